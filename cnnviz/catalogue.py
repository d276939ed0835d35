"""The catalogue of cnnviz pages: one entry per lesson, shared by the navigation and the home page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnviz import data

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # Where `Lesson.file` paths start.


@dataclass(frozen=True)
class Lesson:
    """One page of the app, described for the navigation and for the home page's cards."""

    file: str  # Path of the page script, relative to the project root.
    title: str
    icon: str
    url_path: str
    teaches: str  # One sentence: the concept the page makes visible.
    try_this: str  # One concrete thing for a student to do first.


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        file="app_pages/convolution.py",
        title="Convolution lab",
        icon=":material/grid_on:",
        url_path="convolution",
        teaches="What one filter does: a small kernel slides over an image and each output pixel is a dot product.",
        try_this="Pick the Laplacian edge kernel, then step the window across the image and check the sum by hand.",
    ),
    Lesson(
        file="app_pages/calculator.py",
        title="Layer & parameter calculator",
        icon=":material/calculate:",
        url_path="calculator",
        teaches="How shapes shrink layer by layer and where the parameters of a network live.",
        try_this="Load the VGG16 preset and find the one layer that holds most of its 138 million parameters.",
    ),
    Lesson(
        file="app_pages/train.py",
        title="Train a small CNN",
        icon=":material/model_training:",
        url_path="train",
        teaches="Training live: loss and accuracy curves, then filters, activation maps, errors and a 2-D feature space.",
        try_this="Train the ReLU CNN on Fashion-MNIST, then open the confusion matrix and click the shirt/T-shirt cell.",
    ),
    Lesson(
        file="app_pages/lenet_vs_relu.py",
        title="tanh LeNet vs ReLU CNN",
        icon=":material/compare_arrows:",
        url_path="lenet-vs-relu",
        teaches="Why a small ReLU network beats a tanh LeNet here: activation, pooling and optimiser, one factor at a time.",
        try_this="Run the head-to-head, then read which single change closes most of the gap.",
    ),
    Lesson(
        file="app_pages/transfer.py",
        title="Transfer learning",
        icon=":material/swap_horiz:",
        url_path="transfer",
        teaches="Reusing features: pre-train on some classes, freeze the convolutions, and transfer to unseen classes.",
        try_this="Compare the feature space of the unseen classes before and after retraining the dense layers.",
    ),
    Lesson(
        file="app_pages/augmentation.py",
        title="Augmentation & regularisation",
        icon=":material/auto_awesome:",
        url_path="augmentation",
        teaches="Fighting overfitting on small data: augmentation, dropout and batch normalisation, measured.",
        try_this="Train on 1,000 images with and without augmentation and compare the train-validation gap.",
    ),
    Lesson(
        file="app_pages/explain.py",
        title="What the network looks at",
        icon=":material/visibility:",
        url_path="explain",
        teaches="Why it decided: Grad-CAM, saliency and occlusion show which pixels a trained CNN's answer rests on.",
        try_this="Pick a shirt the network calls a T-shirt and compare the Grad-CAM of the two classes side by side.",
    ),
    Lesson(
        file="app_pages/classroom.py",
        title="The class",
        icon=":material/groups:",
        url_path="classroom",
        teaches="The whole room at once: the lecturer sends a lesson's question, everyone answers, the histogram shows.",
        try_this="Start a class, project its QR code, send the output-shape question and reveal it once most answered.",
    ),
)



def dataset_sources() -> list[dict[str, str]]:
    """For the home page: where each dataset would be loaded from on this server, and why (nothing is loaded)."""
    rows = []
    for name in data.DATASETS:
        status = data.source_status(name)
        rows.append({"Dataset": data.spec(name).title, "Source": status.source or "unavailable", "Why": status.note})
    return rows
