"""`ui.train_with_progress`, the shared Streamlit front of the engine, driven through AppTest.

The script below trains a tiny configuration on the bundled Fashion-MNIST sample (the test
session is offline). Flags in `st.session_state` choose the scenario.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def training_script():
    import streamlit as st

    from cnnviz import training
    from cnnviz.training import TrainConfig
    from widgets import ui

    config = TrainConfig(limit_train=300, limit_test=100, epochs=2, batch_size=st.session_state.get("batch", 32),
                         seed=st.session_state.get("seed", 11))
    if st.session_state.get("stop_at_once"):
        # Stop the shared job before this page even watches it (what a Stop click does mid-run).
        st.session_state["stop_at_once"] = False
        source = training.data_source(config)
        ui._training_job(ui._job_key(config, source), config, None, source, slot="uitest").request_stop()
    result = ui.train_with_progress(config, key="uitest", fresh=st.session_state.get("fresh", False))
    if result is not None:
        st.session_state["seen"] = st.session_state.get("seen", []) + [id(result)]
        st.write(f"RESULT {result.stopped_reason} {result.epochs_completed}")


def _run(**state) -> AppTest:
    at = AppTest.from_function(training_script, default_timeout=180)
    for name, value in state.items():
        at.session_state[name] = value
    return at.run()


def _texts(at: AppTest) -> list[str]:
    return [element.value for element in at.markdown]


def test_trains_then_reuses_the_shared_result_without_retraining():
    at = _run(seed=21)
    assert not at.exception
    assert "RESULT finished 2" in _texts(at)
    assert not at.error and not at.warning
    assert not [button for button in at.button if button.key == "uitest_stop"]  # the panel is gone
    at.run()  # a rerun (any widget) gets the very same shared result object back
    assert not at.exception and len(set(at.session_state["seen"])) == 1
    other = _run(seed=21)  # a new session too
    assert other.session_state["seen"][0] == at.session_state["seen"][0]


def test_bad_settings_show_an_error_and_return_none():
    at = _run(batch=1_000, seed=22)  # more than the 300 training images, within the memory budget
    assert not at.exception
    assert any("larger than the training set" in error.value for error in at.error)
    assert not any(text.startswith("RESULT") for text in _texts(at))


def test_a_stopped_run_is_kept_for_this_session_only_and_fresh_trains_again():
    at = _run(seed=23, stop_at_once=True)
    assert not at.exception
    assert "RESULT stopped 1" in _texts(at)
    assert any("stopped" in warning.value for warning in at.warning)
    at.run()  # reruns keep showing the stopped model, without training again
    assert "RESULT stopped 1" in _texts(at)
    assert len(set(at.session_state["seen"])) == 1
    other = _run(seed=23)  # another session does not get the stopped run: it trains in full
    assert "RESULT finished 2" in _texts(other)
    at.session_state["fresh"] = True  # the Train button pressed again
    at.run()
    assert "RESULT finished 2" in _texts(at) and not at.warning


def seeds_script():
    import streamlit as st

    from cnnviz import training
    from cnnviz.training import TrainConfig
    from widgets import ui

    config = TrainConfig(limit_train=300, limit_test=100, epochs=30, batch_size=32, seed=0, learning_rate=0.0011)
    seeds = (0, 1, 2)

    def work(report):
        runs = training.train_seeds(config, seeds, lambda progress: report("cnn", progress))
        return {"cnn": runs}

    run = ui.train_seeds_with_progress(work, key="seedsui", job_key=config.key(), variants={"cnn": "The small CNN"},
                                       seeds=seeds)
    if run is not None:
        st.write(f"RUN complete={run.complete} finished={','.join(run.finished)}")


def test_the_seeds_panel_names_the_seeds_of_a_group_that_skips_a_cached_seed(monkeypatch):
    """Seed 1 is in the disk cache, so seeds 0 and 2 train together (one group whose first seed is 0):
    the panel names exactly those, and says seed 1 finished."""
    from cnnviz import training
    from cnnviz.training import TrainConfig
    from tests.pages.live_app import LiveRun, markdown

    config = TrainConfig(limit_train=300, limit_test=100, epochs=30, batch_size=32, seed=0, learning_rate=0.0011)
    assert training.train(config.replace(seed=1)).stopped_reason == "finished"  # now cached
    at = AppTest.from_function(seeds_script, default_timeout=240)
    live = LiveRun(at, monkeypatch).start()
    shown = live.wait_for(lambda t: "training together" in markdown(t), what="the group training")
    assert "**Variant 1 of 1: The small CNN** · seeds 0 and 2 training together; seed 1 finished" in markdown(shown)
    at = live.join()
    assert not at.exception and not at.warning
    assert "RUN complete=True finished=cnn" in _texts(at)
    # The oracle: seeds trained together share the group's wall time; seed 1 (trained alone) does not.
    seconds = {seed: training.load_cached(config.replace(seed=seed)).seconds for seed in (0, 1, 2)}
    assert seconds[0] == seconds[2] != seconds[1]


def capped_script():
    import threading

    import streamlit as st

    from cnnviz import training
    from cnnviz.training import TrainConfig
    from widgets import ui

    release = st.session_state["release"]

    def held(name):
        def work(on_progress):
            while not release.wait(0.02):
                if on_progress(name) is False:
                    return "stopped"
            return "done"
        return lambda: training.Job(work, name=name).start()

    # This session already has two trainings running (on two other places of the app)...
    ui.shared_job(f"capped-a-{id(release)}", held("a"), slot="page a")
    ui.shared_job(f"capped-b-{id(release)}", held("b"), slot="page b")
    assert isinstance(release, threading.Event)
    # ... so a third, new one is refused with a message, and nothing trains.
    config = TrainConfig(limit_train=300, limit_test=100, epochs=2, batch_size=32, seed=77)
    result = ui.train_with_progress(config, key="capped")
    st.write(f"RESULT {result}")


def test_a_third_training_of_one_session_is_refused_with_a_message():
    import threading

    release = threading.Event()
    at = AppTest.from_function(capped_script, default_timeout=60)
    at.session_state["release"] = release
    try:
        at.run()
    finally:
        release.set()
    assert not at.exception
    assert any("already have 2 trainings running or waiting" in error.value for error in at.error)
    assert "RESULT None" in _texts(at)
    assert not any(button.key == "capped_stop" for button in at.button)  # no panel: nothing started
