"""Issue 14, points 4 and 5: what a link carries or a student types never becomes markup or a traceback.

One case per failure class found in the attack on the class's server, each driven through AppTest on
the real page files (or on app.py for the page-level catch-all): markdown in link parameter names and
in error messages that quote a value, a 400-digit number, `1e400`, an all-1e308 kernel, deeply nested
JSON, numbers over 4,300 digits (links and the quiz box), a 16-bit PNG and 100000 × 1 pictures on the
Train page and in the augmentation lab, and an unexpected error on a page.

Every case asserts the clear message, that no exception element is in the page, and that no markdown
from the input is rendered. The rendering oracle is markdown-it-py (an independent CommonMark
implementation): an element's body must render to text only (no <a>, no <img>) and must read exactly
like the input; GFM's bare autolinks (which CommonMark does not have) are checked on the body itself.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnviz import parsing
from cnnviz.convolution import MAX_KERNEL_WEIGHT
from cnnviz.errors import SettingsError
from cnnviz.images import MAX_ASPECT_RATIO

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGES = PROJECT_ROOT / "app_pages"

PHISHING = "[Session expired – log in again](http://evil.example/login)"
TRACKER = "![img](http://tracker.example/pixel.png)"
FOUR_HUNDRED_DIGITS = "9" * 400
OVER_4300_DIGITS = "9" * 5000  # Python's int() refuses more than 4,300 digits with a ValueError.
DEEPLY_NESTED = "[" * 5000 + "]" * 5000
_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
# The browser's renderer (remark-gfm, mdast-util-gfm-autolink-literal) looks for these in the text
# after markdown's escapes are undone; JavaScript's \w is ASCII. (Its email rule also needs a space or
# punctuation before the address; left out here, which only makes the check stricter.)
WORD_JOINER = "\u2060"  # Invisible; markdown_text puts it inside "://", "www." and before "@".
_BROWSER_AUTOLINKS = re.compile(r"(?i)(https?://|www(?=\.))[-.\w]+|[-.\w+]+@[-\w]+(?:\.[-\w]+)+", re.ASCII)


def _open(page: str, query: dict[str, str] | None = None, timeout: float = 120,
          state: dict[str, object] | None = None) -> AppTest:
    at = AppTest.from_file(str(PAGES / page), default_timeout=timeout)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    for key, value in (state or {}).items():
        at.session_state[key] = value
    return at.run()


def _open_lab_editor() -> AppTest:
    """The convolution lab with its weights editor (grid and text box) open."""
    return _open("convolution.py", state={"conv_grid_open": True})


def _bodies(at: AppTest) -> list[str]:
    """The markdown source of every element that Streamlit renders as markdown."""
    kinds = ("markdown", "caption", "error", "warning", "info", "success", "title", "header", "subheader")
    return [str(element.value) for kind in kinds for element in getattr(at, kind)]


def _rendered(body: str) -> tuple[str, set[str]]:
    """(the text a reader sees, the HTML tags other than paragraphs and code) for a markdown body."""
    text, tags = _rendered_with_joiners(body)
    return text.replace(WORD_JOINER, ""), tags  # The invisible joiners (see _browser_autolinks) read as nothing.


def _rendered_with_joiners(body: str) -> tuple[str, set[str]]:
    out = _MARKDOWN.render(body)
    tags = set(re.findall(r"<(\w+)", out)) - {"p", "code"}
    return html.unescape(re.sub(r"<[^>]+>", "", out)), tags


def _browser_autolinks(body: str) -> list[str]:
    """What the browser's GFM renderer would turn into links in a markdown body (the text after escapes)."""
    return [match.group(0) for match in _BROWSER_AUTOLINKS.finditer(_rendered_with_joiners(body)[0])]


def _no_markup_from(at: AppTest, payload: str) -> None:
    """No element turns `payload` (or any part of it) into a link or an image."""
    for body in _bodies(at):
        _, tags = _rendered(body)
        assert not tags & {"a", "img"}, body
        # GFM links a bare http://… or www.… in the source, and the browser's renderer also in the text
        # after the escapes are undone (so "\://" alone is not enough there: _browser_autolinks).
        assert not re.search(r"(?<!\\)://|(?i:www)\.", body), f"a bare autolink in {body!r}"
        assert not _browser_autolinks(body), (body, _browser_autolinks(body))


def _shown_literally(at: AppTest, kind: str, payload: str) -> str:
    """The one `kind` element (error, warning...) that quotes `payload`, checked to read as plain text."""
    bodies = [str(element.value) for element in getattr(at, kind)]
    matches = [body for body in bodies if payload in _rendered(body)[0]]
    assert matches, (payload, bodies)
    _no_markup_from(at, payload)
    return matches[0]


def _clean(at: AppTest) -> None:
    assert not at.exception, [element.value for element in at.exception]


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------
# Point 4: markdown injection through links and quoted values


def test_unknown_link_parameter_names_are_counted_not_echoed():
    at = _open("train.py", {PHISHING: "1", TRACKER: "2", "train_epochs": "-4"})
    _clean(at)
    notice = " ".join(str(caption.value) for caption in at.caption if "link_off" in str(caption.value))
    assert "2 unknown parameters" in notice
    assert "train_epochs" in notice  # The page's own name is named...
    assert "evil" not in notice and "tracker" not in notice and "Session" not in notice  # ...a stranger's is not.
    _no_markup_from(at, PHISHING)
    assert at.session_state["train_epochs"] == _open("train.py").session_state["train_epochs"]


def test_a_value_quoted_in_an_error_message_stays_text():
    """The calculator's import quotes the unknown layer type; the convolution lab quotes the typed cell."""
    calculator = _open("calculator.py")
    calculator.text_area(key="calc_import_text").set_value(json.dumps([{"type": PHISHING}])).run()
    calculator.button(key="calc_import_button").click().run()
    _clean(calculator)
    assert "unknown layer type" in _shown_literally(calculator, "error", PHISHING)

    lab = _open_lab_editor()
    cell = "![img](http://x.example)"  # A typed cell is quoted up to 32 characters.
    lab.text_area(key="conv_kernel_text").set_value(f"{cell} 1 2").run()
    lab.button(key="conv_kernel_apply").click().run()
    _clean(lab)
    body = _shown_literally(lab, "error", cell)
    assert "is not a number" in body


def test_an_uploads_file_name_stays_text():
    lab = _open("convolution.py")
    lab.radio(key="conv_source").set_value("Upload").run()
    lab.file_uploader(key="conv_upload").set_value((f"{PHISHING}.png", b"not an image", "image/png")).run()
    _clean(lab)
    _shown_literally(lab, "error", PHISHING)
    picture = _png(np.full((20, 30), 128, np.uint8))
    lab.file_uploader(key="conv_upload").set_value((f"{TRACKER}.png", picture, "image/png")).run()
    _clean(lab)
    assert "20 × 30" in _shown_literally(lab, "caption", TRACKER)  # "Image: upload <name> — 20 × 30".


def test_the_escaping_keeps_every_character_of_the_text():
    """The oracle on its own: markdown-it reads the escaped text back exactly, whatever it holds."""
    from widgets.ui import markdown_text

    samples = [PHISHING, TRACKER, "<img src=x onerror=alert(1)> &amp; &lt;", "**b** _i_ `c` ~~s~~ $x$ :red[r]",
               "a | b\n--|--\n# h\n- item\n1. one\n2) two", "back\\slash \\[", "mail a@b.example, www.x.example"]
    for sample in samples:
        text, tags = _rendered(markdown_text(sample))
        assert not tags - {"br"}, (sample, tags)
        assert text.split() == sample.split(), sample
        assert not _browser_autolinks(markdown_text(sample)), sample
    assert _browser_autolinks("see https\\://evil.example or a\\@b.example") == ["https://evil.example",
                                                                               "a@b.example"]


# ------------------------------------------------------------------------------------------------
# Point 5: numbers with bounds before any float conversion, bounded JSON


@pytest.mark.parametrize("page, name, value", [
    ("convolution.py", "conv_kernel", f"[[{FOUR_HUNDRED_DIGITS},0,0],[0,0,0],[0,0,0]]"),
    ("calculator.py", "calc_view", '{"input_shape":[28,28,1],"layers":[{"type":"flatten"},'
                                   '{"type":"dense","units":' + FOUR_HUNDRED_DIGITS + '}]}'),
    ("calculator.py", "calc_view", '{"input_shape":[' + FOUR_HUNDRED_DIGITS + ',28,1],"layers":[]}'),
    ("train.py", "train_custom_stack", '[{"type":"flatten"},{"type":"dense","units":' + FOUR_HUNDRED_DIGITS + '}]'),
    ("train.py", "train_custom_stack", '[{"type":"flatten"},{"type":"dropout","rate":1e400},'
                                       '{"type":"dense","units":10}]'),
    ("convolution.py", "conv_kernel", json.dumps([[1e308] * 3] * 3)),
    ("calculator.py", "calc_view", DEEPLY_NESTED),
    ("train.py", "train_custom_stack", DEEPLY_NESTED),
    ("convolution.py", "conv_kernel", DEEPLY_NESTED),
    ("train.py", "train_epochs", OVER_4300_DIGITS),
    ("train.py", "train_learning_rate", FOUR_HUNDRED_DIGITS),
    ("train.py", "train_learning_rate", "1e400"),
    ("convolution.py", "conv_row", OVER_4300_DIGITS),
])
def test_a_bad_number_or_json_in_a_link_is_ignored_with_a_notice(page, name, value):
    at = _open(page, {name: value})
    _clean(at)
    notice = " ".join(str(caption.value) for caption in at.caption if "link_off" in str(caption.value))
    assert f"`{name}`" in notice
    default = _open(page).session_state
    if name in default:
        assert at.session_state[name] == default[name]


def test_1e400_and_deep_nesting_in_a_pasted_stack_get_a_clear_message():
    at = _open("train.py", {"train_preset": "custom"})
    for text, message in (('[{"type":"flatten"},{"type":"dropout","rate":1e400},{"type":"dense","units":10}]',
                           "too large"),
                          (DEEPLY_NESTED, "levels deep"),
                          (f'[{{"type":"dense","units":{OVER_4300_DIGITS}}}]', "5,000 characters")):
        at.text_area(key="train_stack_json").set_value(text).run()
        _clean(at)
        assert any(message in str(error.value) for error in at.error), [e.value for e in at.error]


def test_an_all_1e308_kernel_gets_a_clear_message():
    lab = _open_lab_editor()
    lab.text_area(key="conv_kernel_text").set_value("1e308 1e308 1e308\n" * 3).run()
    lab.button(key="conv_kernel_apply").click().run()
    _clean(lab)
    assert any("between -1,000,000 and 1,000,000" in str(error.value) for error in lab.error), \
        [e.value for e in lab.error]

    lab = _open_lab_editor()
    for row in range(3):
        for col in range(3):
            lab.number_input(key=f"conv_k_{row}_{col}").set_value(1e308)
    lab.run()
    _clean(lab)
    assert any(f"between -{MAX_KERNEL_WEIGHT:,.0f} and {MAX_KERNEL_WEIGHT:,.0f}" in str(error.value)
               for error in lab.error), [e.value for e in lab.error]


def test_numbers_over_4300_digits_in_the_quiz_box_get_a_clear_message():
    at = _open("calculator.py")
    at.toggle(key="calc_quiz_on").set_value(True).run()
    at.text_input(key="calc_quiz_guess").set_value(OVER_4300_DIGITS).run()
    at.button(key="calc_quiz_check").click().run()
    _clean(at)
    assert any(f"at most {parsing.MAX_NUMBER_CHARACTERS}" in str(w.value) for w in at.warning), \
        [w.value for w in at.warning]


# ------------------------------------------------------------------------------------------------
# Point 5: uploads that are unusual on the Train page and in the augmentation lab

SIXTEEN_BIT = Image.fromarray((np.arange(200 * 200).reshape(200, 200) * 1000 % 65536).astype(np.uint16))
WIDE = np.full((1, 100_000), 200, np.uint8)
TALL = np.full((100_000, 1), 200, np.uint8)


def _sixteen_bit_png() -> bytes:
    buffer = io.BytesIO()
    SIXTEEN_BIT.save(buffer, format="PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I;16")
    return buffer.getvalue()


def _thin_message(at: AppTest) -> bool:
    return any("too thin" in str(error.value) and f"{MAX_ASPECT_RATIO} times" in str(error.value)
               for error in at.error)


def test_thin_and_16_bit_pictures_in_the_augmentation_lab():
    at = _open("augmentation.py")
    at.radio(key="aug_source").set_value("upload").run()
    for pixels in (WIDE, TALL, np.full((3, 100_000), 9, np.uint8)):
        at.file_uploader(key="aug_upload").set_value(("thin.png", _png(pixels), "image/png")).run()
        _clean(at)
        assert _thin_message(at), [e.value for e in at.error]
    at.file_uploader(key="aug_upload").set_value(("deep.png", _sixteen_bit_png(), "image/png")).run()
    _clean(at)
    assert not at.error


@pytest.mark.slow
def test_thin_and_16_bit_pictures_on_the_train_page():
    at = _open("train.py", timeout=300)
    at.number_input(key="train_limit_train").set_value(300)
    at.number_input(key="train_limit_test").set_value(100)
    at.number_input(key="train_epochs").set_value(1)
    at.run()
    at.button(key="train_start").click().run()
    _clean(at)
    at.file_uploader(key="train_upload").set_value(("deep.png", _sixteen_bit_png(), "image/png")).run()
    _clean(at)
    assert not at.error
    for pixels in (WIDE, TALL):
        at.file_uploader(key="train_upload").set_value(("thin.png", _png(pixels), "image/png")).run()
        _clean(at)
        assert _thin_message(at), [e.value for e in at.error]


# ------------------------------------------------------------------------------------------------
# Point 5: no page shows a traceback


def test_an_unexpected_error_shows_an_apology_with_an_id_that_is_in_the_servers_log(monkeypatch, caplog):
    from widgets import ui

    def broken(*args, **kwargs):
        raise RuntimeError("secret detail at /srv/cnnviz/app_pages/convolution.py")

    monkeypatch.setattr(ui, "page_header", broken)
    with caplog.at_level(logging.ERROR, logger="cnnviz"):
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    _clean(at)
    [apology] = [str(error.value) for error in at.error]
    error_id = re.search(r"error id ([0-9a-f]{8})", apology).group(1)
    assert "Sorry" in apology
    assert not any("secret" in body or "/srv" in body for body in _bodies(at))
    logged = [record for record in caplog.records if error_id in record.getMessage()]
    assert logged and logged[0].exc_info and "secret detail" in str(logged[0].exc_info[1])


def test_a_domain_error_escaping_a_page_shows_its_message_as_text(monkeypatch):
    from widgets import ui

    def refused(*args, **kwargs):
        raise SettingsError(f"The setting {PHISHING} cannot be used.")

    monkeypatch.setattr(ui, "page_header", refused)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    _clean(at)
    body = _shown_literally(at, "error", PHISHING)
    assert "cannot be used" in body and "error id" not in body


def test_streamlit_shows_no_error_details_in_the_browser():
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"


def test_the_tab_icon_is_not_fetched_from_another_site():
    """Streamlit's browser code turns a ":material/...:" page icon into a fonts.gstatic.com address that
    every visitor's browser fetches (seen in tests/browser/test_reliability_browser.py); an emoji is a
    data: URL."""
    import ast

    tree = ast.parse((PROJECT_ROOT / "app.py").read_text())
    [call] = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
              and getattr(node.func, "attr", None) == "set_page_config"]
    icon = next(keyword.value.value for keyword in call.keywords if keyword.arg == "page_icon")
    assert isinstance(icon, str) and not icon.startswith(":material"), icon


def test_the_worst_link_values_cost_little_memory_and_time():
    """Measured in a fresh subprocess: peak memory (ru_maxrss) after reading the worst values a link or a
    paste can carry, against the same process's peak right before (the import of cnnviz.shareable)."""
    import subprocess
    import sys

    script = """
import resource, time
from cnnviz.shareable import Param, MAX_PARAM_LENGTH
from cnnviz import parsing
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
worst = ["[" * MAX_PARAM_LENGTH, "[" * 4000 + "]" * 4000, "[" + "9" * (MAX_PARAM_LENGTH - 2) + "]",
         "[" + ",".join(["1e400"] * 1300) + "]", "9" * MAX_PARAM_LENGTH]
start = time.perf_counter()
for value in worst:
    for kind in ("json", "int", "float"):
        try:
            Param("p", kind).decode(value)
        except ValueError:
            pass
for text in ("[" * 100_000 + "]" * 100_000, "[" + "9" * 199_000 + "]"):
    try:
        parsing.parse_json(text)
    except ValueError:
        pass
seconds = time.perf_counter() - start
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, seconds)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=PROJECT_ROOT, check=True)
    grown_kb, seconds = result.stdout.split()
    assert int(grown_kb) < 50_000, f"peak memory grew by {int(grown_kb) / 1000:.0f} MB"
    assert float(seconds) < 5, seconds
