"""cnnviz's domain errors: one base class, one subclass per kind of bad input.

Every error here carries a message written for a student (what is wrong and what to do), so a
page shows `str(error)` as it is. Pages catch `CnnvizError` (or a subclass), never a name string.
The input errors are also `ValueError`s, so scripts that caught `ValueError` keep working.

A stop is not an error of the student's settings: `TrainingCancelled` (the student pressed Stop,
or a job left the queue) derives from `TrainingStopped`, outside the `CnnvizError` tree.
"""

from __future__ import annotations


class CnnvizError(Exception):
    """Base class of every cnnviz domain error; its message is meant for a student."""


class SettingsError(CnnvizError, ValueError):
    """Settings that cannot run as asked (a batch larger than the data, an unknown optimiser…)."""


class ArchitectureError(SettingsError):
    """An impossible layer stack, explained for a student.

    ``index`` is the 0-based position of the layer at fault in the stack (None when the problem
    is the input shape or the stack as a whole) and ``layer_name`` its Keras name when known.
    """

    def __init__(self, message: str, *, index: int | None = None, layer_name: str | None = None):
        super().__init__(message)
        self.index = index
        self.layer_name = layer_name


class BudgetError(SettingsError):
    """A network or a run too big for the server (memory or run length); the message gives the numbers."""


class KernelError(SettingsError):
    """A kernel, stride, padding or pooling window that cannot be applied to the image."""


class SplitError(SettingsError):
    """A class split (transfer learning) that cannot be used, with a message a student can act on."""


class WeightsUnavailable(SettingsError):
    """Pre-trained (ImageNet) weights that are neither in the Keras cache nor downloadable right now."""


class InputError(CnnvizError, ValueError):
    """A typed or linked text that cannot be read (a number too long or too large, JSON nested too deeply)."""


class LinkError(CnnvizError, ValueError):
    """A shared-link parameter that cannot be read (the page falls back to its default)."""


class DatasetError(CnnvizError):
    """Base class of the dataset errors."""


class DatasetUnavailable(DatasetError):
    """No source can provide the dataset; the message says why and what to do, for pages to show."""


class DatasetFormatError(DatasetUnavailable, ValueError):
    """A dataset file, archive or image folder is malformed (wrong magic number, truncated, unsafe).

    It is a `ValueError` (bad input) and also a `DatasetUnavailable`, so a page that shows
    unavailable datasets shows this message too.
    """


class ImageDecodeError(CnnvizError, ValueError):
    """An upload that cannot be turned into an image; the message is meant for the student."""


class DrawingError(ImageDecodeError):
    """A drawing (the drawing pad) that cannot be used as an input: nothing drawn yet."""


class JobLimitError(CnnvizError):
    """One student (one browser session) asked for more trainings at once than the server allows."""


class TrainingStopped(Exception):
    """Base class of the ways a run ends early on purpose (not a settings error)."""


class TrainingCancelled(TrainingStopped):
    """Training was stopped by the student, or while waiting for a free training slot."""


class QueueCancelled(TrainingStopped):
    """Raised inside the training queue's `slot()` when the waiting job asked to leave the queue."""


class ExplainError(SettingsError):
    """An explanation (Grad-CAM, saliency, occlusion, feature visualisation) that cannot be computed
    for this model as asked: no convolution layer, a layer or class that does not exist."""


class ClassroomError(CnnvizError):
    """A class session (cnnviz.classroom) that cannot do what was asked: base of the classroom errors."""


class ClassNotFound(ClassroomError):
    """No class with this code: a mistyped code, or the class has ended or expired."""


class ClassroomFull(ClassroomError):
    """A classroom store is at one of its bounds (classes, students, polls, answers, entries)."""


class LecturerOnly(ClassroomError):
    """An action that needs the lecturer's secret, asked without it (or with a wrong one)."""


class ClassroomInputError(ClassroomError, ValueError):
    """A display name, question, answer, entry or follow-me view that the classroom refuses."""


class ClassroomUnavailable(ClassroomError):
    """The shared classroom store (Redis) does not answer: the class cannot be reached just now."""
