"""Fashion-MNIST: 70,000 grey 28x28 photos of clothing in 10 classes (Zalando, 2017)."""

from __future__ import annotations

from cnnviz.data.dataset_spec import ASSETS_DIR, AugmentationAdvice, DatasetSpec, Layout

SPEC = DatasetSpec(
    name="fashion_mnist",
    label="Fashion-MNIST",
    title="Fashion-MNIST",
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    image_shape=(28, 28, 1),
    dark_background=True,
    default_preset="fashion_relu_cnn",
    augmentation=AugmentationAdvice(
        vertical_flip=("Clothing photos are always upright: an upside-down shoe, bag or shirt never occurs "
                       "in the test set, so a vertical flip spends capacity on images the model will never see.")),
    local=(Layout("fashion-mnist", "idx"),),
    keras_cache=(Layout("fashion-mnist", "idx"),),
    keras_dataset="fashion_mnist",
    download_host="storage.googleapis.com",  # Where keras.datasets.fashion_mnist.load_data() downloads from.
    bundled_sample=ASSETS_DIR / "fashion_mnist_sample.npz",
    # Garment families, used to judge whether transfer classes resemble pre-training ones.
    class_families={
        0: "upper-body garment", 2: "upper-body garment", 3: "upper-body garment",
        4: "upper-body garment", 6: "upper-body garment",
        1: "trousers", 5: "footwear", 7: "footwear", 9: "footwear", 8: "bag",
    },
)
