"""The class page's lesson logic (issue 18): join links, and the lessons' own questions as polls.

A poll is a question, its options and the index of the computed answer (`PollQuestion`); the
answer always comes from the code the lessons use (`cnnviz.convolution.output_size` for the
convolution lab's shape question, `cnnviz.architecture.summarize` for the calculator's parameter
question), and the wrong options are the mistakes students typically make (no +1, stride or
padding forgotten, bias or input channels forgotten). Options are sorted by value, so their order
says nothing about which one is right. The store (`cnnviz.classroom`) keeps and counts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from cnnviz import architecture as arch
from cnnviz import convolution as conv
from cnnviz.classroom import model
from cnnviz.errors import ArchitectureError, ClassroomInputError
from cnnviz.lessons.calculator import DEFAULT_PRESET

CLASS_PARAM = "class"  # The join link's query parameter: `<class page>?class=CODE`.
CLASS_PAGE_PATH = "classroom"  # The class page's url path (cnnviz.catalogue).
N_OPTIONS = 4  # The computed answer and three typical mistakes.
QUESTION_KINDS = ("convolution output shape", "calculator parameters")


@dataclass(frozen=True)
class PollQuestion:
    """A question ready for `ClassroomStore.send_poll`: `options[answer]` is the computed answer."""

    question: str
    options: tuple[str, ...]
    answer: int


def join_link(page_url: str | None, code: str, *, host: str | None = None) -> str:
    """The link students open: the class page's URL (as the lecturer's browser sees it, its query
    dropped) with `?class=CODE`. Without a URL, `host` (the request's Host header) gives
    `http://host/classroom`; without either, a relative link."""
    if not model.normalise_code(code):
        raise ClassroomInputError("A join link needs a class code.")
    query = urlencode({CLASS_PARAM: code})
    if page_url:
        parts = urlsplit(page_url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    if host and all(c.isascii() and (c.isalnum() or c in "-.:[]") for c in host):
        return f"http://{host}/{CLASS_PAGE_PATH}?{query}"
    return f"/{CLASS_PAGE_PATH}?{query}"


def code_from_link(raw: Any) -> str:
    """The class code of a join link's `class` parameter (or a typed code: case, spaces and dashes
    do not matter), or `ClassroomInputError` for text that cannot be a class code."""
    code = model.normalise_code(str(raw))
    if not code:
        raise ClassroomInputError(f"This is not a class code: a code has {model.CODE_LENGTH} letters and digits "
                                  "(check the link, or ask the lecturer for a new one).")
    return code


def shown_code(code: str) -> str:
    """A code as projected: in groups of four (ABCD-EFGH-JKMN), read and typed without doubt."""
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def question_stack(input_shape: Sequence[int] | None, layers: Sequence[Mapping[str, Any]] | None
                   ) -> tuple[tuple[int, ...], list[dict[str, Any]]]:
    """The stack a parameter question asks about: the calculator's current one (when this session
    has one that works), else the calculator's default preset."""
    if input_shape is not None and layers and parameter_layers(input_shape, layers):
        return tuple(int(v) for v in input_shape), [dict(layer) for layer in layers]
    preset = arch.PRESETS[DEFAULT_PRESET]
    return tuple(preset.input_shape), [dict(layer) for layer in preset.layers]


def _options(answer: int, mistakes: Iterable[int], fillers: Iterable[int]) -> tuple[tuple[str, ...], int]:
    """The answer and the first distinct positive mistakes (then fillers), sorted by value."""
    values = [answer]
    for value in (*mistakes, *fillers):
        if value > 0 and value not in values:
            values.append(value)
        if len(values) == N_OPTIONS:
            break
    ordered = sorted(values)
    return tuple(f"{value:,}" for value in ordered), ordered.index(answer)


def _padding_text(padding: conv.Padding) -> str:
    return f'"{padding}"' if isinstance(padding, str) else str(padding)


def output_shape_question(height: int, width: int, kernel: int, stride: int = 1,
                          padding: conv.Padding = "valid") -> PollQuestion:
    """The convolution lab's question: the output shape of one kernel over an image.

    The answer is `conv.output_size` per side; the wrong options are the output with the "+ 1"
    forgotten, with the stride forgotten, with the padding forgotten, and one off by one.
    Raises `KernelError` (a `SettingsError`) for settings the lab refuses.
    """
    out_h, out_w = conv.output_size(height, kernel, stride, padding), conv.output_size(width, kernel, stride, padding)

    def mistakes(n: int) -> list[int]:
        before, after = conv.padding_amounts(n, kernel, stride, padding)
        pad = before + after
        return [(n - kernel + pad) // stride,            # forgot the + 1
                n - kernel + pad + 1,                     # forgot the stride
                (n - kernel) // stride + 1,               # forgot the padding
                n]                                        # "the same as the input"

    # One option is a pair (rows, columns): the mistakes are made on both sides at once.
    pairs = [(h, w) for h, w in zip(mistakes(height), mistakes(width), strict=True)]
    pairs += [(out_h + d, out_w + d) for d in (1, -1, 2, -2, 3)]
    seen = [(out_h, out_w)]
    for pair in pairs:
        if min(pair) > 0 and pair not in seen:
            seen.append(pair)
        if len(seen) == N_OPTIONS:
            break
    ordered = sorted(seen)
    question = (f"Convolution lab: an input of {height} × {width}, a {kernel} × {kernel} kernel, stride {stride}, "
                f"padding {_padding_text(padding)}. How big is the output (rows × columns)?")
    return PollQuestion(question, tuple(f"{h} × {w}" for h, w in ordered), ordered.index((out_h, out_w)))


def parameter_layers(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]]) -> list[int]:
    """The indexes of the stack's Conv2D and Dense layers (the ones a parameter question asks about);
    empty when the stack does not work."""
    try:
        rows = arch.summarize(tuple(int(v) for v in input_shape), [dict(layer) for layer in layers])
    except ArchitectureError:
        return []
    return [row.index for row in rows if row.type in ("conv2d", "dense")]


def parameters_question(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]],
                        index: int | None = None) -> PollQuestion:
    """The calculator's question: how many parameters layer `index` (a Conv2D or Dense layer; by
    default the first) of this stack has.

    The answer is the calculator's own count (`arch.summarize`); the wrong options are the count
    without the biases, with the input channels forgotten, for one filter (or unit) only, and
    with one bias per output value. Raises `ArchitectureError` for a stack the calculator refuses.
    """
    shape = tuple(int(v) for v in input_shape)
    stack = [dict(layer) for layer in layers]
    rows = arch.summarize(shape, stack)
    candidates = [row.index for row in rows if row.type in ("conv2d", "dense")]
    if not candidates:
        raise ArchitectureError("This stack has no Conv2D or Dense layer to ask about.")
    chosen = candidates[0] if index is None else index
    if chosen not in candidates:
        raise ArchitectureError(f"Layer {chosen + 1} has no weights to count: ask about a Conv2D or Dense layer.")
    row = rows[chosen]
    layer = arch.normalize_layer(stack[chosen])
    depth = int(row.input_shape[-1])
    bias = bool(layer.get("use_bias", True))
    if row.type == "conv2d":
        kernel = layer["kernel_size"]
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else (int(kernel[0]), int(kernel[1]))
        units, weights_per_unit = int(layer["filters"]), kh * kw * depth
        per_position = int(row.output_shape[0]) * int(row.output_shape[1])
        forgot_depth = (kh * kw + bias) * units
    else:
        units, weights_per_unit, per_position = int(layer["units"]), depth, 1
        forgot_depth = (1 + bias) * units
    mistakes = [weights_per_unit * units + (0 if bias else units),   # biases forgotten (or added)
                forgot_depth,                                        # input channels forgotten
                weights_per_unit + bias,                             # one filter / unit only
                weights_per_unit * units + units * per_position]     # a bias per output value
    step = max(1, units)
    options, answer = _options(row.params, mistakes, (row.params + d * step for d in (1, -1, 2, -2, 3)))
    question = (f"Layer calculator: layer {chosen + 1} is {arch.describe_layer(layer)}; its input is "
                f"{' × '.join(str(v) for v in row.input_shape)}. How many parameters (weights and biases) "
                f"does it have?")
    return PollQuestion(question, options, answer)
