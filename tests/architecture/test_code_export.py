"""The exported Keras code runs and builds the same model."""

from __future__ import annotations

import contextlib
import io

from keras_oracle import EXPORT_STACK, keras_rows, our_rows

from cnnviz import architecture as arch


def test_keras_code_runs_and_builds_the_same_model():
    code = arch.keras_code((32, 30, 3), EXPORT_STACK)
    assert "tensorflow" not in code
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "<exported>", "exec"), namespace)  # noqa: S102 - our own generated code.
    model = namespace["model"]
    assert keras_rows(model) == our_rows(arch.summarize((32, 30, 3), EXPORT_STACK))
