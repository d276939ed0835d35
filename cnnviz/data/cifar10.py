"""CIFAR-10: 60,000 small 32x32 colour photos in 10 classes (Krizhevsky, 2009)."""

from __future__ import annotations

from cnnviz.data.dataset_spec import AugmentationAdvice, DatasetSpec, Layout

SPEC = DatasetSpec(
    name="cifar10",
    label="CIFAR-10",
    title="CIFAR-10",
    class_names=("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"),
    image_shape=(32, 32, 3),
    dark_background=False,
    default_preset="cifar10_cnn",
    augmentation=AugmentationAdvice(
        vertical_flip=("CIFAR-10 photos have the sky on top: upside-down planes, ships and horses do not "
                       "occur in the test set, so vertical flips mostly add unrealistic images.")),
    local=(Layout("cifar-10-batches-py", "cifar_pickle"), Layout("cifar10", "class_folders")),
    # Keras 3 extracts into cifar-10-batches-py-target/; Keras 2 extracted beside it.
    keras_cache=(Layout("cifar-10-batches-py-target/cifar-10-batches-py", "cifar_pickle"),
                 Layout("cifar-10-batches-py", "cifar_pickle")),
    keras_dataset="cifar10",
    download_host="www.cs.toronto.edu",  # Where keras.datasets.cifar10.load_data() downloads from.
)
