"""The class: a lecturer starts a class, students join by link or QR code, and the lessons' own
questions go to the whole room as live polls (issue 18).

Who sees what:
- nobody in a class: "Start a class" (a title) and "Join with a code";
- the lecturer (this session holds the class's secret, `ui.LECTURER_KEY`, never in a URL): the
  join link (this page's URL + `?class=CODE`) and its QR code, the students, "Send a question"
  (the convolution lab's output-shape question or the calculator's parameter question, built
  with their computed answer by `cnnviz.lessons.classroom`), the live histogram (a fragment that
  reruns every second only while a poll is open) and "Reveal the answer";
- a student (opened `?class=CODE`): an optional display name and "Join"; then the current
  question, their answer, and after the reveal the answer and the class's histogram. A small
  fragment re-reads the current question every `STUDENT_POLL_SECONDS`, so a new question or a
  reveal appears without a click (one store read; it reruns the page only when it changed).

The leaderboard (below the questions, for everyone in the class): the lecturer sets its budget
(`cnnviz.classroom.leaderboard.LeaderboardBudget`); a student enters the network they have on the
Train page (`ui.train_page_config`) or a preset, sees a refusal (`leaderboard.check_entry`) when it
is over the budget, and submits it; the server's trainer (`ui.entry_trainer`) trains it (identical
configurations once). The board, a fragment that reruns every `BOARD_SECONDS`, ranks the trained
entries by test accuracy (± the seed spread when several seeds ran) and shows every entry's
network, parameters and status; a failed entry has a Retry for its student and the lecturer.

"Students follow me" and "Follow the lecturer" are in the sidebar on every page (`ui.classroom_sidebar`).
Names and titles are shown as text (`ui.markdown_text`, `st.dataframe`), never as markup.
"""

from __future__ import annotations

from typing import cast

import streamlit as st

from cnnviz import architecture, data
from cnnviz import convolution as conv
from cnnviz.classroom import Poll
from cnnviz.classroom import leaderboard as board
from cnnviz.errors import ClassroomInputError, CnnvizError
from cnnviz.figures import classroom as figures
from cnnviz.lessons import classroom as lesson
from cnnviz.shareable import Param
from widgets import ui

VIEW_PARAMS = [Param(lesson.CLASS_PARAM, "str")]  # Checked below, with a message of its own.
LIVE_SECONDS = 1.0  # The lecturer's histogram, while a poll is open.
STUDENT_POLL_SECONDS = 2.0  # A student's check for a new question or a reveal.
QR_WIDTH = 320
STRIDES = (1, 2, 3, 4)
KERNEL_SIZES = (1, 2, 3, 4, 5, 6, 7)
PADDINGS = ("valid", "same", 1, 2, 3)  # As in the convolution lab.
BOARD_SECONDS = 2.0  # Everyone's leaderboard re-reads the entries this often.
ENTRY_SOURCES = {"train": "My network from the Train page", "preset": "A preset"}

ui.page_header("The class", "The whole room at once: the lecturer sends a lesson's question, everyone answers, "
                            "and the histogram shows what the class thinks before the answer is revealed.")
ui.restore_view(VIEW_PARAMS)
store = ui.classroom_store()


# ----------------------------------------------------------------------------------------------
# Nobody in a class yet
# ----------------------------------------------------------------------------------------------

NO_CLASS = "No class in this browser yet: start one as the lecturer, or join with the code you were given."


def start_or_join() -> None:
    st.info(NO_CLASS, icon=":material/groups:")
    left, right = st.columns(2)
    with left, st.container(border=True):
        st.subheader("Start a class")
        title = st.text_input("Title (optional)", key="classroom_title", max_chars=store.limits.max_title_chars,
                              placeholder="e.g. CNNs, week 3")
        if st.button("Start a class", key="classroom_start", type="primary", icon=":material/co_present:"):
            new = store.create_class(title)
            st.session_state[ui.LECTURER_KEY] = {"code": new.code, "secret": new.lecturer_secret}
            st.query_params.pop(lesson.CLASS_PARAM, None)
            st.rerun()
        st.caption("Your lecturer key stays in this browser tab only: keep the tab open and move between pages "
                   "with the sidebar (reloading the tab loses the key, and with it the class's controls).")
    with right, st.container(border=True):
        st.subheader("Join with a code")
        typed = st.text_input("Class code", key="classroom_typed_code", placeholder="ABCD-EFGH-JKMN")
        if st.button("Open the class", key="classroom_open") and typed:
            st.query_params[lesson.CLASS_PARAM] = lesson.code_from_link(typed)
            st.rerun()


# ----------------------------------------------------------------------------------------------
# The lecturer
# ----------------------------------------------------------------------------------------------

def conv_question() -> lesson.PollQuestion:
    """The convolution lab's shape question, its settings starting from the lab's (this session)."""
    state = st.session_state
    columns = st.columns(5)
    height = columns[0].number_input("Input height", 1, 512, 28, key="classroom_conv_h")
    width = columns[1].number_input("Input width", 1, 512, 28, key="classroom_conv_w")
    kernel_default = state.get("conv_kernel_size", 3)
    kernel = columns[2].selectbox("Kernel", KERNEL_SIZES, key="classroom_conv_k",
                                  index=KERNEL_SIZES.index(kernel_default) if kernel_default in KERNEL_SIZES else 2)
    stride_default = state.get("conv_stride", 1)
    stride = columns[3].selectbox("Stride", STRIDES, key="classroom_conv_s",
                                  index=STRIDES.index(stride_default) if stride_default in STRIDES else 0)
    padding_default = state.get("conv_padding", "valid")
    padding = columns[4].selectbox("Padding", PADDINGS, key="classroom_conv_p",
                                   index=PADDINGS.index(padding_default)
                                   if padding_default in PADDINGS else 0)
    return lesson.output_shape_question(int(height), int(width), int(kernel), int(stride), cast(conv.Padding, padding))


def calculator_question() -> lesson.PollQuestion:
    """The calculator's parameter question, about this session's calculator stack (or its default)."""
    shape, layers = lesson.question_stack(st.session_state.get("calc_saved_input_shape"),
                                          st.session_state.get("calc_current"))
    indexes = lesson.parameter_layers(shape, layers)
    index = st.selectbox("Layer", indexes, key="classroom_calc_layer",
                         format_func=lambda i: f"layer {i + 1}: {layers[i].get('type', '?')}")
    return lesson.parameters_question(shape, layers, index)


def send_question(code: str, secret: str) -> None:
    with st.container(border=True):
        st.subheader("Send a question")
        kind = st.radio("Question", lesson.QUESTION_KINDS, key="classroom_kind", horizontal=True)
        try:
            question = conv_question() if kind == lesson.QUESTION_KINDS[0] else calculator_question()
        except CnnvizError as error:
            ui.show_error(error)
            return
        st.markdown(ui.markdown_text(question.question))
        st.caption("Options: " + ui.markdown_text(" · ".join(question.options))
                   + f" (computed answer, hidden until you reveal it: {ui.markdown_text(question.options[question.answer])})")
        if st.button("Send to the class", key="classroom_send", type="primary", icon=":material/send:"):
            store.send_poll(code, secret, question.question, question.options, answer=question.answer)
            st.rerun()


def live_results(code: str, secret: str, poll_id: int) -> None:
    """The lecturer's histogram; while the poll is open this reruns alone every `LIVE_SECONDS`."""
    try:
        results = store.results(code, poll_id, secret)
    except CnnvizError as error:
        ui.show_error(error)
        return
    st.metric("Answered", f"{results.answered} of {results.students}")
    ui.plotly_chart(figures.poll_figure(results), key="classroom_live_chart")


def lecturer_view(code: str, secret: str) -> None:
    info = store.class_info(code)
    st.subheader(ui.markdown_text(info.title or "Your class"))
    link = lesson.join_link(st.context.url, code, host=st.context.headers.get("host"))
    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"**Join link** (code **{lesson.shown_code(code)}**): students open it, or scan the QR code.")
        st.code(link, language=None, wrap_lines=True)
        st.metric("Students", info.students)
        students = store.students(code, secret)
        if students:
            with st.expander("Who joined"):
                st.dataframe({"#": [s.number for s in students], "name": [s.display_name for s in students]},
                             hide_index=True)
        if st.button("End the class", key="classroom_end", icon=":material/logout:",
                     help="Deletes the class, its questions and answers for everyone."):
            store.end_class(code, secret)
            del st.session_state[ui.LECTURER_KEY]
            st.rerun()
    with right:
        st.image(figures.qr_png(link), width=QR_WIDTH, caption="Scan to join")

    send_question(code, secret)
    poll = store.current_poll(code)
    if poll is None:
        st.caption("No question sent yet.")
        return
    st.subheader(f"Question {poll.poll_id}")
    st.markdown(ui.markdown_text(poll.question))
    with ui.key_figure():  # In presenter mode: under the title, on the projector's first screen.
        st.fragment(live_results, run_every=None if poll.revealed else LIVE_SECONDS)(code, secret, poll.poll_id)
    if poll.revealed:
        answer = store.poll(code, poll.poll_id, secret).answer
        st.success("Revealed: " + ui.markdown_text(poll.options[answer] if answer is not None else "?"),
                   icon=":material/check_circle:")
    elif st.button("Reveal the answer", key="classroom_reveal", type="primary", icon=":material/visibility:"):
        store.reveal(code, secret, poll.poll_id)
        st.rerun()


# ----------------------------------------------------------------------------------------------
# A student
# ----------------------------------------------------------------------------------------------

def watch_poll(code: str, seen: tuple[int, bool] | None) -> None:
    """Reruns the page once the current question (or its reveal) differs from the one shown."""
    try:
        poll = store.current_poll(code)
    except CnnvizError:
        return  # The page shows the error on its next run.
    if (None if poll is None else (poll.poll_id, poll.revealed)) != seen:
        st.rerun(scope="app")


def student_poll(code: str, student_id: str, poll: Poll) -> None:
    st.subheader(f"Question {poll.poll_id}")
    st.markdown(ui.markdown_text(poll.question))
    mine = store.my_answer(code, poll.poll_id, student_id)
    if poll.revealed:
        results = store.results(code, poll.poll_id)
        right = poll.answer
        st.success("The answer: " + ui.markdown_text(poll.options[right] if right is not None else "?"),
                   icon=":material/check_circle:")
        if mine is not None:
            verdict = "right" if mine == right else "not this one"
            st.markdown(f"You answered **{ui.markdown_text(poll.options[mine])}**: {verdict}.")
        ui.plotly_chart(figures.poll_figure(results), key="classroom_student_chart")
        return
    options = list(range(len(poll.options)))
    choice = st.radio("Your answer", options, key=f"classroom_choice_{poll.poll_id}", index=mine,
                      format_func=lambda i: ui.markdown_text(poll.options[i]))
    if st.button("Send my answer", key="classroom_answer", type="primary", disabled=choice is None) \
            and choice is not None:
        store.answer(code, poll.poll_id, student_id, choice)
        mine = choice
    if mine is not None:
        st.caption(f"Your answer: {ui.markdown_text(poll.options[mine])} (you can change it until the reveal).")


def leave_class() -> None:
    for key in (ui.STUDENT_KEY, ui.FOLLOWING_KEY, ui.FOLLOWED_VERSION_KEY):
        st.session_state.pop(key, None)


def student_view(code: str) -> None:
    info = store.class_info(code)
    st.subheader(ui.markdown_text(info.title or "A class"))
    student = ui.student_of()
    if student is None or student["code"] != code:
        name = st.text_input("Your name (optional: shown to the lecturer)", key="classroom_name",
                             max_chars=store.limits.max_name_chars)
        if st.button("Join", key="classroom_join", type="primary", icon=":material/login:"):
            try:
                joined = store.join(code, name)
            except ClassroomInputError as error:  # A name it refuses: say why, keep the form.
                ui.show_error(error, kind="warning")
                return
            st.session_state[ui.STUDENT_KEY] = {"code": code, "student_id": joined.student_id,
                                                "name": joined.display_name}
            st.rerun()
        return
    store.student(code, student["student_id"])  # Still a student of this class (else a clear message).
    st.markdown(f"You are in as **{ui.markdown_text(student['name'])}**. Switch on *Follow the lecturer* in "
                "the sidebar to see the lecturer's page on yours.")
    st.button("Leave the class", key="classroom_leave", on_click=leave_class, icon=":material/logout:")
    poll = store.current_poll(code)
    if poll is None:
        st.info("No question yet: it appears here when the lecturer sends one.", icon=":material/hourglass_empty:")
    else:
        student_poll(code, student["student_id"], poll)
    st.fragment(watch_poll, run_every=STUDENT_POLL_SECONDS)(
        code, None if poll is None else (poll.poll_id, poll.revealed))
    leaderboard_section(code, student_id=student["student_id"])


# ----------------------------------------------------------------------------------------------
# The leaderboard
# ----------------------------------------------------------------------------------------------

def budget_form(code: str, secret: str, budget: board.LeaderboardBudget) -> None:
    """The lecturer's budget for every entry (saved for the class; entries are checked against it)."""
    with st.expander("Set the leaderboard's budget"):
        columns = st.columns(3)
        max_parameters = columns[0].number_input("Most parameters", 1, board.MAX_PARAMETERS_LIMIT,
                                                 budget.max_parameters, step=5_000, key="classroom_lb_parameters")
        max_epochs = columns[1].number_input("Most epochs", 1, board.MAX_EPOCHS_LIMIT, budget.max_epochs,
                                             key="classroom_lb_epochs")
        seeds = columns[2].selectbox("Seeds per entry", board.SEED_CHOICES, key="classroom_lb_seeds",
                                     index=board.SEED_CHOICES.index(budget.seeds),
                                     help="Several seeds: the board shows each entry's mean and its spread.")
        columns = st.columns(3)
        dataset = columns[0].selectbox("Dataset", data.DATASETS, index=data.DATASETS.index(budget.dataset),
                                       format_func=lambda name: data.spec(name).title, key="classroom_lb_dataset")
        train_images = columns[1].number_input("Training images", *board.TRAIN_IMAGES_RANGE, budget.train_images,
                                               step=500, key="classroom_lb_train_images",
                                               help="The same stratified subset for every entry.")
        whole = columns[2].checkbox("The whole test split", value=budget.test_images is None,
                                    key="classroom_lb_whole_test", help="The same test images for every entry.")
        test_images = columns[2].number_input("Test images", *board.TEST_IMAGES_RANGE, budget.test_images or 2_000,
                                              step=500, disabled=whole, key="classroom_lb_test_images")
        if st.button("Save the budget", key="classroom_lb_save", icon=":material/save:"):
            try:
                chosen = board.LeaderboardBudget(int(max_parameters), int(max_epochs), dataset, int(train_images),
                                                 None if whole else int(test_images), int(seeds))
                store.set_budget(code, secret, chosen.to_mapping())
            except CnnvizError as error:
                ui.show_error(error)
            else:
                st.rerun()


def entry_to_submit(budget: board.LeaderboardBudget) -> dict | None:
    """The entry this student would submit (their Train-page network, or a preset), or None."""
    mine = ui.train_page_config()
    source = st.radio("Your entry", tuple(ENTRY_SOURCES), format_func=ENTRY_SOURCES.get, horizontal=True,
                      key="classroom_lb_source", index=0 if mine is not None else 1)
    if source == "train":
        if mine is None:
            st.info("Set up a network on the Train page first (its settings are entered as they are there), "
                    "or pick a preset.", icon=":material/model_training:")
            return None
        return board.entry_config_from_train(mine, budget)
    choices = dict(board.preset_choices(budget))
    preset = st.selectbox("Preset", tuple(choices), key="classroom_lb_preset",
                          format_func=lambda key: f"{architecture.PRESETS[key].title} ({choices[key]:,} parameters)")
    return board.preset_entry_config(preset, budget)


def submit_form(code: str, student_id: str, budget: board.LeaderboardBudget) -> None:
    with st.container(border=True):
        st.subheader("Enter the leaderboard")
        try:
            config = entry_to_submit(budget)
            if config is None:
                return
            st.markdown(ui.markdown_text(board.describe_stack(config)))
            st.caption(ui.markdown_text(board.describe_settings(config)))
            parameters = board.check_entry(config, budget)
        except CnnvizError as error:
            ui.show_error(error, prefix="This entry cannot be submitted: ")
            return
        st.caption(f"{parameters:,} parameters (at most {budget.max_parameters:,}).")
        if st.button("Submit to the leaderboard", key="classroom_lb_submit", type="primary", icon=":material/send:"):
            try:
                entry = store.submit_entry(code, student_id, config)
                ui.entry_trainer().submit(code, entry.entry_id)
            except CnnvizError as error:
                ui.show_error(error)


def retry_entry(code: str, entry_id: int) -> None:
    try:
        store.update_entry(code, entry_id, status="queued")
        ui.entry_trainer().submit(code, entry_id)
    except CnnvizError as error:
        ui.show_error(error)


STATUS_TEXT = {"queued": "queued", "training": "training…", "done": "done", "failed": "failed"}


def board_view(code: str, student_id: str | None, lecturer: bool) -> None:
    """The board; reruns alone every `BOARD_SECONDS` (a trainer's refresh and one read of the entries)."""
    try:
        ui.entry_trainer().refresh(code)
        rows = board.board(store.entries(code))
    except CnnvizError as error:
        ui.show_error(error)
        return
    if not rows:
        st.caption("No entries yet.")
        return
    st.dataframe({
        "rank": [str(row.rank) if row.rank is not None else "–" for row in rows],
        "name": [row.name + (" (you)" if row.student_id == student_id else "") for row in rows],
        "network": [row.stack for row in rows],
        "settings": [row.settings for row in rows],
        "parameters": [f"{row.parameters:,}" if row.parameters is not None else "" for row in rows],
        "test accuracy": [row.accuracy_text for row in rows],
        "status": [STATUS_TEXT.get(row.status, row.status) for row in rows],
    }, hide_index=True, key="classroom_board")
    for row in rows:
        if row.status == "failed" and (lecturer or row.student_id == student_id):
            whose = "Your entry" if row.student_id == student_id else f"Entry {row.entry_id} ({row.name})"
            ui.show_message("warning", row.message, icon=":material/error:", prefix=f"{ui.markdown_text(whose)} failed: ")
            st.button("Retry", key=f"classroom_lb_retry_{row.entry_id}", on_click=retry_entry,
                      args=(code, row.entry_id), icon=":material/refresh:")


def leaderboard_section(code: str, *, secret: str | None = None, student_id: str | None = None) -> None:
    st.divider()
    st.subheader("Leaderboard")
    budget = board.LeaderboardBudget.from_mapping(store.class_info(code).budget)
    st.caption("Budget: " + ui.markdown_text(budget.describe()) + ". Ranked by test accuracy.")
    if secret is not None:
        budget_form(code, secret, budget)
    if student_id is not None:
        submit_form(code, student_id, budget)
    st.fragment(board_view, run_every=BOARD_SECONDS)(code, student_id, secret is not None)


# ----------------------------------------------------------------------------------------------
# Who is this?
# ----------------------------------------------------------------------------------------------

raw_code = st.query_params.get(lesson.CLASS_PARAM)
lecturer, student = ui.lecturer_of(), ui.student_of()
try:
    code = lesson.code_from_link(raw_code) if raw_code else None
except CnnvizError as error:
    ui.show_error(error, kind="warning", icon=":material/link_off:")
    code = None
    if lecturer is None and student is None:
        start_or_join()
        st.stop()
if code is None:
    code = (lecturer or student or {}).get("code")
try:
    if code is None:
        start_or_join()
    elif lecturer is not None and lecturer["code"] == code:
        lecturer_view(code, lecturer["secret"])
        leaderboard_section(code, secret=lecturer["secret"])
    else:
        student_view(code)
except CnnvizError as error:
    ui.show_error(error)
    if st.button("Start or join another class", key="classroom_forget"):
        for held in (ui.LECTURER_KEY, ui.STUDENT_KEY):
            if (st.session_state.get(held) or {}).get("code") == code:
                del st.session_state[held]
        st.query_params.pop(lesson.CLASS_PARAM, None)
        st.rerun()
