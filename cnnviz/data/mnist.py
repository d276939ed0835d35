"""MNIST: 70,000 grey 28x28 handwritten digits 0-9 (LeCun, Cortes and Burges, 1998)."""

from __future__ import annotations

from cnnviz.data.dataset_spec import AugmentationAdvice, DatasetSpec, Layout

SPEC = DatasetSpec(
    name="mnist",
    label="MNIST",
    title="MNIST digits",
    class_names=tuple(str(digit) for digit in range(10)),
    image_shape=(28, 28, 1),
    dark_background=True,
    default_preset="fashion_relu_cnn",
    augmentation=AugmentationAdvice(
        vertical_flip=("Digits are never upside down: a vertical flip turns a 6 into something like a 9 "
                       "(and a 9 into a 6) while keeping its label, so it teaches the network wrong answers."),
        horizontal_flip=("A mirrored digit is not a digit any more (2, 3, 4, 5, 7 and 9 read backwards), so a "
                         "horizontal flip adds wrongly labelled images. It is fine for clothing and for CIFAR-10."),
        rotation_limit_degrees=15.0,
        rotation_severity="warning",
        rotation=("Rotating digits by up to {degrees:.0f}° (more than about {limit:.0f}°) blurs the line "
                  "between classes: a rotated 6 approaches a 9, a tilted 1 a 7. Handwriting is only "
                  "slightly slanted.")),
    local=(Layout("mnist", "idx"),),
    keras_cache=(Layout("mnist.npz", "npz"),),
    keras_dataset="mnist",
    download_host="storage.googleapis.com",  # Where keras.datasets.mnist.load_data() downloads from.
)
