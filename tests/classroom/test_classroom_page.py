"""The class page (app_pages/classroom.py) and follow me (widgets/ui.py), through app.py: a lecturer and
two students are separate AppTest sessions sharing the server's one store (`ui.classroom_store`),
in-process and in a real Redis (`CNNVIZ_REDIS_URL`, the `redis_url` fixture of conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz import convolution as conv
from cnnviz.classroom import InProcessStore, RedisStore, workers
from cnnviz.classroom.leaderboard import LeaderboardBudget
from cnnviz.classroom.trainers import LocalEntryTrainer
from widgets import ui

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGE = "app_pages/classroom.py"
# test_leaderboard.py's tiny budget (and its seeds'-CNN entry): the disk cache trains it once per session.
TINY = LeaderboardBudget(max_epochs=1, train_images=256)


@pytest.fixture(params=["in-process", "redis"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The server's store for this test: a fresh in-process one, or the test Redis (emptied)."""
    url = ""
    if request.param == "redis":
        import redis

        url = request.getfixturevalue("redis_url")
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        monkeypatch.setenv("CNNVIZ_REDIS_URL", url)
    else:
        monkeypatch.delenv("CNNVIZ_REDIS_URL", raising=False)
    ui._classroom_store.clear()
    yield url
    ui._classroom_store.clear()


def session(query: dict[str, str] | None = None, page: str = PAGE) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(page)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    return at.run()


def start_class(title: str = "Week 3") -> tuple[AppTest, str]:
    lecturer = session()
    lecturer.text_input(key="classroom_title").input(title)
    lecturer.button(key="classroom_start").click().run()
    assert not lecturer.exception
    link = lecturer.code[0].value
    assert "?class=" in link
    return lecturer, link.split("?class=")[1]


def join(code: str, name: str) -> AppTest:
    student = session({"class": code})
    student.text_input(key="classroom_name").input(name)
    student.button(key="classroom_join").click().run()
    assert not student.exception
    return student


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_a_poll_goes_from_the_lecturer_to_two_students_and_back(backend):
    lecturer, code = start_class()
    if backend:  # Really in Redis, not in this process's memory.
        assert isinstance(ui.classroom_store(), RedisStore)
        assert ui.classroom_store().class_info(code).title == "Week 3"
    else:
        assert isinstance(ui.classroom_store(), InProcessStore)
    ana, bo = join(code, "Ana"), join(code, "")
    assert "**Ana**" in ana.markdown[0].value and "**Student 2**" in bo.markdown[0].value

    # The default question: the convolution lab's, 28 × 28 input, 3 × 3 kernel, stride 1, valid.
    lecturer.run()
    assert metric(lecturer, "Students") == "2"
    lecturer.button(key="classroom_send").click().run()
    assert metric(lecturer, "Answered") == "0 of 2"
    truth = conv.output_size(28, 3, 1, "valid")
    right = f"{truth} × {truth}"
    wrong = f"{truth + 1} × {truth + 1}"
    # Lecturer-only controls never reach a student's page.
    for student in (ana, bo):
        student.run()
        assert "classroom_reveal" not in [b.key for b in student.button]
        options = student.radio[0].options
        assert right in options and wrong in options and len(options) == 4
    ana.radio[0].set_value(ana.radio[0].options.index(right)).run()
    ana.button(key="classroom_answer").click().run()
    bo.radio[0].set_value(bo.radio[0].options.index(wrong)).run()
    bo.button(key="classroom_answer").click().run()

    lecturer.run()
    assert metric(lecturer, "Answered") == "2 of 2"
    bars = lecturer.get("plotly_chart")[0].proto.spec
    assert '"x":[' in bars  # The histogram is drawn from the counts below.
    store = ui.classroom_store()
    secret = lecturer.session_state[ui.LECTURER_KEY]["secret"]
    poll = store.current_poll(code)
    results = store.results(code, poll.poll_id, secret)
    assert dict(zip(results.poll.options, results.counts, strict=True))[right] == 1
    assert dict(zip(results.poll.options, results.counts, strict=True))[wrong] == 1

    # Before the reveal, a student's page shows no answer; after it, both see it.
    assert not ana.success
    lecturer.button(key="classroom_reveal").click().run()
    assert lecturer.success[0].value == f"Revealed: {right}"
    for student, verdict in ((ana, "right"), (bo, "not this one")):
        student.run()
        assert student.success[0].value == f"The answer: {right}"
        assert any(verdict in m.value for m in student.markdown)
        assert not student.exception


def test_follow_me_moves_a_following_student_and_only_while_following(backend):
    lecturer, code = start_class()
    ana, bo = join(code, "Ana"), join(code, "Bo")
    ana.toggle(key="classroom_follow_toggle").set_value(True).run()
    assert "waiting" in ana.sidebar.caption[0].value

    # The lecturer opens the calculator on VGG16 and pushes that view.
    lecturer.switch_page("app_pages/calculator.py")
    lecturer.query_params["calc_link_preset"] = "vgg16"
    lecturer.run()
    lecturer.button(key="classroom_follow_me").click().run()
    state = ui.classroom_store().follow_state(code)
    assert (state.page, state.query, state.version) == ("calculator", "calc_link_preset=vgg16", 1)

    ana.run()  # Within one run of the follow fragment: the calculator, with the lecturer's preset.
    assert ana.title[0].value == "Layer & parameter calculator"
    assert ana.session_state["calc_preset"] == "vgg16"
    assert ana.session_state[ui.FOLLOWED_VERSION_KEY] == 1
    bo.run()  # Not following: stays on the class page.
    assert bo.title[0].value == "The class"

    # Ana leaves follow mode: the next push does not move her.
    ana.toggle(key="classroom_follow_toggle").set_value(False).run()
    lecturer.switch_page("app_pages/home.py")
    lecturer.query_params.clear()
    lecturer.run()
    lecturer.button(key="classroom_follow_me").click().run()
    assert ui.classroom_store().follow_state(code).version == 2
    ana.run()
    assert ana.title[0].value == "The class"
    assert ana.session_state[ui.FOLLOWED_VERSION_KEY] == 1
    # Switching it on again moves her to the latest push at once.
    ana.toggle(key="classroom_follow_toggle").set_value(True).run()
    assert ana.title[0].value.startswith("cnnviz")
    assert ana.session_state[ui.FOLLOWED_VERSION_KEY] == 2


def test_names_and_titles_are_text_and_bad_links_get_a_message():
    ui._classroom_store.clear()
    lecturer, code = start_class("<b>Week</b> [x](http://evil.example)")
    assert lecturer.subheader[0].value == ui.markdown_text("<b>Week</b> [x](http://evil.example)")
    # A name the store refuses: a message, the form stays, nobody joined.
    student = session({"class": code})
    student.text_input(key="classroom_name").input("<img src=x>").run()
    student.button(key="classroom_join").click().run()
    assert "letters, digits, spaces" in student.warning[0].value
    assert student.button(key="classroom_join")
    assert ui.classroom_store().class_info(code).students == 0

    garbage = session({"class": "<script>alert(1)</script>"})
    assert "This is not a class code" in garbage.warning[0].value
    assert "alert" not in garbage.warning[0].value
    assert garbage.button(key="classroom_start")  # And the way to start or join one.

    lecturer.button(key="classroom_end").click().run()  # Ended (like expired): the link is dead.
    late = session({"class": code})
    assert "There is no class with this code" in late.error[0].value
    assert not late.exception
    ui._classroom_store.clear()


def test_the_lecturer_key_stays_in_the_lecturer_session():
    ui._classroom_store.clear()
    lecturer, code = start_class()
    secret = lecturer.session_state[ui.LECTURER_KEY]["secret"]
    assert secret not in lecturer.code[0].value and secret not in str(dict(lecturer.query_params))
    # Someone with the join link is a student: no lecturer controls, whatever they try.
    other = session({"class": code})
    assert not [b for b in other.button if b.key in ("classroom_send", "classroom_reveal", "classroom_end")]
    assert not [b for b in other.sidebar.button if b.key == "classroom_follow_me"]
    ui._classroom_store.clear()


def test_the_class_page_and_follow_me_never_import_tensorflow():
    # A fresh interpreter: a lecturer starts a class and sends both kinds of question, a student joins
    # and switches follow mode on; neither TensorFlow nor Keras may be loaded on the way.
    script = textwrap.dedent(
        """
        import json, sys
        from streamlit.testing.v1 import AppTest
        def session(query=None):
            at = AppTest.from_file(sys.argv[1], default_timeout=60)
            at.switch_page("app_pages/classroom.py")
            at.query_params.update(query or {})
            return at.run()
        lecturer = session()
        lecturer.button(key="classroom_start").click().run()
        lecturer.button(key="classroom_send").click().run()
        lecturer.radio(key="classroom_kind").set_value("calculator parameters").run()
        lecturer.button(key="classroom_send").click().run()
        code = lecturer.code[0].value.split("?class=")[1]
        student = session({"class": code})
        student.button(key="classroom_join").click().run()
        student.toggle(key="classroom_follow_toggle").set_value(True).run()
        print(json.dumps({
            "exception": bool(lecturer.exception or student.exception),
            "question": student.markdown[1].value.startswith("Layer calculator"),
            "tensorflow": "tensorflow" in sys.modules,
            "keras": "keras" in sys.modules,
        }))
        """
    )
    completed = subprocess.run([sys.executable, "-c", script, APP], cwd=Path(APP).parent, capture_output=True,
                               text=True, timeout=180, check=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == {"exception": False, "question": True, "tensorflow": False, "keras": False}


def test_the_lecturer_sends_the_convolution_labs_own_question_from_the_lab():
    ui._classroom_store.clear()
    lecturer, code = start_class()
    student = join(code, "Ana")
    lecturer.switch_page("app_pages/convolution.py")
    lecturer.run()
    assert not lecturer.exception
    lecturer.button(key="conv_send_to_class").click().run()
    state = lecturer.session_state
    height = width = 28  # The lab's default image: a Fashion-MNIST sample.
    kernel, stride, padding = state["conv_kernel_size"], state["conv_stride"], state["conv_padding"]
    secret = state[ui.LECTURER_KEY]["secret"]
    poll = ui.classroom_store().poll(code, 1, secret)
    assert f"{height} × {width}, a {kernel} × {kernel} kernel, stride {stride}" in poll.question
    size = (conv.output_size(height, kernel, stride, padding), conv.output_size(width, kernel, stride, padding))
    assert poll.options[poll.answer] == f"{size[0]} × {size[1]}"
    student.run()  # The student sees it on the class page; a student's lab has no such button.
    assert student.radio[0].options == list(poll.options)
    student.switch_page("app_pages/convolution.py")
    student.run()
    assert not [b for b in student.button if b.key == "conv_send_to_class"]
    ui._classroom_store.clear()


def board_of(at: AppTest) -> dict[str, list[str]]:
    frame = next(d.value for d in at.dataframe if "rank" in d.value.columns)
    return {column: [str(value) for value in frame[column]] for column in frame.columns}


def test_a_leaderboard_entry_trains_once_and_appears_for_every_session(backend):
    lecturer, code = start_class()
    # The lecturer's budget: tiny, so that the entry trains in a second or two.
    lecturer.number_input(key="classroom_lb_epochs").set_value(1)
    lecturer.number_input(key="classroom_lb_train_images").set_value(256)
    lecturer.button(key="classroom_lb_save").click().run()
    store = ui.classroom_store()
    assert LeaderboardBudget.from_mapping(store.class_info(code).budget) == TINY
    ana, bo = join(code, "Ana"), join(code, "Bo")

    # Bo enters the network of his Train page: its 5 epochs are refused, 1 epoch is taken.
    bo.switch_page("app_pages/train.py").run()
    bo.switch_page(PAGE).run()
    assert any("allows at most 1" in e.value for e in bo.error), [e.value for e in bo.error]
    assert "classroom_lb_submit" not in [b.key for b in bo.button]
    bo.switch_page("app_pages/train.py").run()
    bo.number_input(key="train_epochs").set_value(1).run()
    bo.switch_page(PAGE).run()
    bo.button(key="classroom_lb_submit").click().run()
    assert board_of(bo)["name"] == ["Bo (you)"] and board_of(bo)["status"][0] in ("queued", "training…", "done")
    # Ana enters the preset: the same network and settings, so one training serves both.
    ana.run()  # (she has no Train-page network: the preset is offered, the seeds' CNN first)
    assert ana.radio(key="classroom_lb_source").value == "preset"
    assert ana.selectbox(key="classroom_lb_preset").value == "fashion_relu_cnn"
    ana.button(key="classroom_lb_submit").click().run()
    first, second = store.entries(code)
    assert first.config_key == second.config_key

    trainer = ui.entry_trainer()
    if isinstance(trainer, LocalEntryTrainer):
        assert trainer.wait(120) and trainer.registry.started == 1
    else:  # The RQ trainer: one worker, in this process, until the queue is empty.
        workers.run_worker(backend, burst=True)
    done = store.entries(code)
    assert [e.status for e in done] == ["done", "done"], [e.message for e in done]
    accuracy = f"{done[0].accuracy:.1%}"
    for at in (lecturer, ana, bo):
        at.run()
        assert not at.exception
        shown = board_of(at)
        assert shown["rank"] == ["1", "1"] and shown["test accuracy"] == [accuracy, accuracy]
        assert shown["parameters"] == ["38,254", "38,254"] and shown["status"] == ["done", "done"]
        assert shown["network"][0].startswith("Conv2D 8, 3×3, relu → MaxPool 2×2")
    assert board_of(ana)["name"] == ["Bo", "Ana (you)"] and board_of(lecturer)["name"] == ["Bo", "Ana"]
