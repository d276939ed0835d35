"""Layer & parameter calculator: how shapes shrink layer by layer and where the parameters live.

Everything here is arithmetic from `cnnviz.architecture`; this page never imports TensorFlow
(the Keras code it offers is text). The numbers agree with Keras' `model.summary()` (tested).
"""

from __future__ import annotations

import streamlit as st

from cnnviz import architecture as arch
from cnnviz.architecture.layers import shape_text
from cnnviz.figures.calculator import parameters_bar_figure, volumes_figure
from cnnviz.lessons import calculator
from cnnviz.lessons.calculator import QUIZ_WHAT
from cnnviz.shareable import Param
from widgets import ui

CUSTOM = "custom"
VIEW_KEY = "calc_view"  # The whole stack as compact JSON, mirrored in the URL.
PRESET_LINK_KEY = "calc_link_preset"  # Instead of the stack: the name of a preset left unchanged.
BASE_KEY = "calc_base"  # The stack the table starts from (a preset, an import or a shared link).
IMPORT_MESSAGE_KEY = "calc_import_message"
SAVED_SHAPE_KEY = "calc_saved_input_shape"  # Plain (non-widget) copies that survive a page switch.
SAVED_PRESET_KEY = "calc_saved_preset"

VIEW_PARAMS = [Param(PRESET_LINK_KEY, "choice", choices=tuple(arch.PRESETS)),
               Param(VIEW_KEY, "json", validate=calculator.is_valid_view), Param("calc_log_scale", "bool")]


# ---------------------------------------------------------------------------------------------
# State and callbacks.


def _set_base(input_shape, layers, preset: str | None = None) -> None:
    """Start the table afresh from a stack and set the input-shape controls (and the preset) to match it."""
    st.session_state[BASE_KEY] = [dict(layer) for layer in layers]
    for key, size in zip(("calc_height", "calc_width", "calc_channels"), input_shape):
        st.session_state[key] = int(size)
    if preset is not None:
        st.session_state["calc_preset"] = preset


def _init_state() -> None:
    if BASE_KEY in st.session_state:
        if "calc_height" not in st.session_state:
            # Back from another page: Streamlit dropped this page's widget state (the input shape,
            # the preset choice and the table's edits), so restore them from the last run.
            _set_base(st.session_state.get(SAVED_SHAPE_KEY, (28, 28, 1)),
                      st.session_state.get("calc_current", st.session_state[BASE_KEY]),
                      st.session_state.get(SAVED_PRESET_KEY, CUSTOM))
        return
    linked = st.session_state.get(PRESET_LINK_KEY)
    if linked in arch.PRESETS:  # A link to a preset left unchanged opens as that preset.
        _set_base(arch.PRESETS[linked].input_shape, arch.PRESETS[linked].layers, linked)
        return
    view = st.session_state.get(VIEW_KEY)
    if view is not None and calculator.is_valid_view(view):
        _set_base(*calculator.stack_from_view(view), CUSTOM)
        return
    preset = arch.PRESETS[calculator.DEFAULT_PRESET]
    _set_base(preset.input_shape, preset.layers, calculator.DEFAULT_PRESET)


def _load_preset() -> None:
    key = st.session_state["calc_preset"]
    if key in arch.PRESETS:
        _set_base(arch.PRESETS[key].input_shape, arch.PRESETS[key].layers)


def _replace_layers(edited: tuple[list[dict], int] | None) -> None:
    """Restart the table from an edited stack (keeps the input shape) and select the moved layer."""
    if edited is None:
        return
    layers, selected = edited
    st.session_state[BASE_KEY] = layers
    st.session_state["calc_preset"] = CUSTOM
    st.session_state["calc_move_layer"] = selected


def _move_layer(step: int) -> None:
    _replace_layers(calculator.move_layer(st.session_state.get("calc_current", []),
                                          st.session_state.get("calc_move_layer", 0), step))


def _insert_layer() -> None:
    _replace_layers(calculator.insert_layer(st.session_state.get("calc_current", []),
                                            st.session_state.get("calc_move_layer", 0),
                                            st.session_state.get("calc_insert_type", "conv2d")))


def _import_json() -> None:
    upload = st.session_state.get("calc_import_file")
    try:
        input_shape, layers = calculator.import_stack(upload.getvalue() if upload is not None else None,
                                                      st.session_state.get("calc_import_text", ""))
    except arch.ArchitectureError as error:
        st.session_state[IMPORT_MESSAGE_KEY] = ("error", f"Nothing imported: {ui.markdown_text(error)}")
        return
    _set_base(input_shape, layers, CUSTOM)
    st.session_state[IMPORT_MESSAGE_KEY] = ("success", f"Imported {len(layers)} layers on a "
                                                       f"{shape_text(input_shape)} input.")


# ---------------------------------------------------------------------------------------------
# Page sections.


def _use_shape(shape: tuple[int, int, int]) -> None:
    for key, size in zip(("calc_height", "calc_width", "calc_channels"), shape):
        st.session_state[key] = int(size)


def input_shape_ui() -> tuple[int, int, int]:
    own = ui.session_class_folder_dataset()  # Images this student uploaded on the train page.
    if own is not None:
        shape = own.image_shape
        st.button(f"Use the shape of your images ({shape[0]}×{shape[1]}×{shape[2]})", key="calc_own_shape",
                  on_click=_use_shape, args=(shape,), icon=":material/photo_library:",
                  help="The input shape of the class-folder dataset you uploaded on the training page.")
    columns = st.columns(3)
    height = columns[0].number_input("Input height", min_value=1, max_value=arch.MAX_INPUT_SIDE, step=1,
                                     key="calc_height")
    width = columns[1].number_input("Input width", min_value=1, max_value=arch.MAX_INPUT_SIDE, step=1,
                                    key="calc_width")
    channels = columns[2].number_input("Channels", min_value=1, max_value=arch.MAX_CHANNELS, step=1,
                                       key="calc_channels", help="1 for greyscale, 3 for colour (RGB).")
    return int(height), int(width), int(channels)


def preset_ui() -> None:
    options = [CUSTOM] + list(arch.PRESETS)
    st.selectbox(
        "Start from", options, key="calc_preset", on_change=_load_preset,
        format_func=lambda key: "Your own stack" if key == CUSTOM else
        f"{arch.PRESETS[key].title} — {arch.PRESETS[key].total_params:,} parameters",
        help="Choosing a network loads its layers and input shape into the table below.")
    key = st.session_state["calc_preset"]
    if key in arch.PRESETS:
        st.caption(arch.PRESETS[key].description)


def move_insert_ui(view: calculator.CalculatorView) -> None:
    """Reorder layers and insert new ones (the table itself adds rows only at the end)."""
    layers = view.layers
    with st.expander("Move or insert a layer", icon=":material/swap_vert:"):
        if not layers:
            st.caption("Add a row to the table first.")
            return
        names = view.names
        if st.session_state.get("calc_move_layer", 0) >= len(layers):
            st.session_state["calc_move_layer"] = len(layers) - 1
        columns = st.columns([3, 1, 1, 3, 2], vertical_alignment="bottom")
        columns[0].selectbox("Layer", range(len(layers)), key="calc_move_layer",
                             format_func=lambda i: f"{i + 1}. {names[i]}" if i < len(names) else str(i))
        columns[1].button("Up", key="calc_move_up", on_click=_move_layer, args=(-1,), icon=":material/arrow_upward:")
        columns[2].button("Down", key="calc_move_down", on_click=_move_layer, args=(1,),
                          icon=":material/arrow_downward:")
        columns[3].selectbox("New layer", arch.LAYER_TYPES, key="calc_insert_type",
                             format_func=lambda t: arch.LAYERS[t].label)
        columns[4].button("Insert after", key="calc_insert", on_click=_insert_layer, icon=":material/add:")


def quiz_ui(rows) -> tuple[int | None, str | None]:
    """"Predict first": hide one layer's output shape or parameter count until the student guesses.

    Returns (hidden layer index or None, what is hidden).
    """
    with st.expander("Predict first: hide one number and guess it", icon=":material/psychology:"):
        if not rows:
            st.caption("Fix the stack first.")
            return None, None
        on = st.toggle("Hide a number", key="calc_quiz_on")
        columns = st.columns([2, 2, 3])
        index = columns[0].selectbox("Layer", range(len(rows)), key="calc_quiz_layer",
                                     format_func=lambda i: f"{i + 1}. {rows[i].name}" if i < len(rows) else str(i))
        what = columns[1].radio("Hide its", QUIZ_WHAT, key="calc_quiz_what", horizontal=True)
        if not on:
            return None, None
        index = min(int(index), len(rows) - 1)
        row = rows[index]
        revealed = st.session_state.get("calc_quiz_revealed") == calculator.quiz_key(row, what)
        guess = columns[2].text_input("Your guess", key="calc_quiz_guess",
                                      placeholder="e.g. 13x13x8" if what == "output shape" else "e.g. 80")
        if st.button("Check my guess", key="calc_quiz_check", icon=":material/task_alt:"):
            verdict = calculator.check_guess(row, what, guess)
            if verdict.right is None:
                ui.show_message("warning", verdict.message)
            else:
                ui.show_message("success" if verdict.right else "error", verdict.message)
                st.session_state["calc_quiz_revealed"] = calculator.quiz_key(row, what)
                revealed = True
        if revealed:
            return None, None
        st.caption(f"The {what} of layer {index + 1} ({row.name}) is hidden below. Work it out from the "
                   f"layer before it, then check.")
        return index, what


def results_table(view: calculator.CalculatorView, hidden_index, hidden_what) -> None:
    table = []
    for row in view.rows:
        hide_shape = row.index == hidden_index and hidden_what == "output shape"
        hide_params = row.index == hidden_index and hidden_what == "parameters"
        rf_h, rf_w = row.receptive_field
        table.append({
            "#": row.index + 1,
            "layer": row.name,
            "what": row.description,
            "output shape": "?" if hide_shape else shape_text(row.output_shape),
            "parameters": "?" if hide_params else f"{row.params:,}",
            "formula": "?" if hide_params else row.formula,
            "receptive field": ("whole image" if row.sees_whole_input else f"{rf_h}×{rf_w}"),
            "multiply-adds": f"{row.mult_adds:,}",
            "values out": "?" if hide_shape else f"{row.activation_size:,}",
            "note": row.note,
        })
    failed = view.failed
    if failed is not None:
        table.append({"#": failed.index + 1, "layer": f"✖ {failed.name}", "what": failed.what,
                      "output shape": "impossible", "parameters": "", "formula": "", "receptive field": "",
                      "multiply-adds": "", "values out": "", "note": str(failed.error)})
    if table:
        st.dataframe(table, hide_index=True, width="stretch", key="calc_results",
                     column_config={"#": st.column_config.NumberColumn(width="small"),
                                    "note": st.column_config.TextColumn(width="large")})


def totals_ui(total: arch.Totals, hidden_what) -> None:
    hide = hidden_what == "parameters"
    columns = st.columns(3)
    columns[0].metric("Total parameters", "?" if hide else f"{total.params:,}",
                      help="Every weight and bias, as Keras' model.summary() counts them.")
    columns[1].metric("Trainable", "?" if hide else f"{total.trainable_params:,}")
    columns[2].metric("Non-trainable", f"{total.non_trainable_params:,}",
                      help="Batch normalization's moving mean and variance: updated, not learned.")
    columns = st.columns(3)
    columns[0].metric("Multiply-adds per image", calculator.big_number(total.mult_adds),
                      help="Convolution: out_h·out_w·filters·kh·kw·in_channels; Dense: inputs·units. "
                           "Bias additions, activations and pooling are not counted.")
    columns[1].metric("Weights in memory", "?" if hide else calculator.bytes_text(total.parameter_bytes),
                      help="float32: 4 bytes per parameter.")
    columns[2].metric("Activations per image", calculator.bytes_text(total.activation_bytes),
                      help=f"{total.activation_values:,} numbers (input and every layer's output) × 4 bytes, "
                           "for one forward pass of one image; training keeps them for the whole batch.")


def dense_instead_ui(input_shape, rows, total: arch.Totals | None) -> None:
    st.subheader("Instead of convolutions")
    st.write("What if the image went straight into a Dense layer? Every pixel of every channel gets its own "
             "weight for every unit.")
    units = st.number_input("Units in that Dense layer", min_value=1, max_value=100_000, value=100, step=10,
                            key="calc_dense_units")
    params, formula = arch.dense_instead(input_shape, int(units))
    columns = st.columns(2)
    columns[0].metric(f"Dense({int(units):,}) on the flattened {shape_text(input_shape)} input", f"{params:,}")
    columns[0].caption(formula)
    if total is not None:
        first = rows[0]
        columns[1].metric("This whole stack", f"{total.params:,}")
        if first.type == "conv2d":
            columns[1].caption(f"Its first convolution needs only {first.params:,} ({first.formula}): the same "
                               f"small kernel is reused at every position of the image.")


def export_import_ui(view: calculator.CalculatorView) -> None:
    code_tab, json_tab, import_tab = st.tabs(["Keras code", "JSON", "Import JSON"])
    with code_tab:
        if view.valid:
            code = view.keras_code()
            st.code(code, language="python")
            st.download_button("Download model.py", code, file_name="model.py", mime="text/x-python",
                               key="calc_download_py", icon=":material/download:")
        else:
            st.caption("Fix the stack to export it.")
    with json_tab:
        if view.valid:
            text = view.json_text()
            st.code(text, language="json")
            st.download_button("Download stack.json", text, file_name="stack.json", mime="application/json",
                               key="calc_download_json", icon=":material/download:")
        else:
            st.caption("Fix the stack to export it.")
    with import_tab:
        st.file_uploader("A .json file exported here", type=["json"], key="calc_import_file")
        st.text_area("…or paste JSON", key="calc_import_text", height=140,
                     placeholder='{"input_shape": [28, 28, 1], "layers": [{"type": "flatten"}, '
                                 '{"type": "dense", "units": 10, "activation": "softmax"}]}')
        st.button("Import", key="calc_import_button", on_click=_import_json, icon=":material/upload:")
        message = st.session_state.pop(IMPORT_MESSAGE_KEY, None)
        if message is not None:
            (st.error if message[0] == "error" else st.success)(message[1])


# ---------------------------------------------------------------------------------------------
# The page, top to bottom.

ui.page_header("Layer & parameter calculator",
               "How shapes shrink layer by layer, and where the parameters of a network live.")
ui.restore_view(VIEW_PARAMS)
_init_state()

preset_ui()
input_shape = input_shape_ui()
st.subheader("Layers")
layers = ui.layer_stack_editor("calc_stack", st.session_state[BASE_KEY], input_shape)
st.session_state["calc_current"] = layers
st.session_state[SAVED_SHAPE_KEY] = input_shape
st.session_state[SAVED_PRESET_KEY] = st.session_state["calc_preset"]
view = calculator.calculator_view(input_shape, layers)  # The one lesson call.
move_insert_ui(view)
rows = list(view.rows)
shared = view.shared_view
if view.valid:
    # An unchanged preset is shared by its name, any other stack by its JSON, the default by nothing.
    for key, value in ((VIEW_KEY, shared), (PRESET_LINK_KEY, view.shared_preset)):
        if value is None:
            st.session_state.pop(key, None)
        else:
            st.session_state[key] = value
ui.publish_view(VIEW_PARAMS)

st.subheader("Layer by layer")
hidden_index, hidden_what = quiz_ui(rows if view.valid else [])
results_table(view, hidden_index, hidden_what)
if view.error is not None:
    ui.show_architecture_error(view.error)
    if rows:
        st.caption(f"The table and the figures show the {len(rows)} layer(s) before the problem; totals "
                   f"return once the stack works.")
if rows:
    if view.totals is not None:
        totals_ui(view.totals, hidden_what if hidden_index is not None else None)
    with ui.key_figure():
        bars_tab, volumes_tab = st.tabs(["Parameters per layer", "Shapes shrinking"])
    with bars_tab:
        log_scale = st.toggle("Log scale", key="calc_log_scale",
                              help="Shows small layers next to huge ones (VGG16's first Dense layer).")
        ui.plotly_chart(parameters_bar_figure(rows, log_scale=log_scale,
                                              hidden_index=hidden_index if hidden_what == "parameters" else None),
                        key="calc_bars")
    with volumes_tab:
        st.caption("Each box is one layer's output: height and depth for the image size, width for the "
                   "channels (log scale). Flat vectors are thin bars.")
        ui.plotly_chart(volumes_figure(input_shape, rows,
                                       hidden_index=hidden_index if hidden_what == "output shape" else None),
                        key="calc_volumes")

dense_instead_ui(input_shape, rows, view.totals)
st.subheader("Export and import")
export_import_ui(view)
