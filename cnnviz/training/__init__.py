"""Training: one frozen `TrainConfig` in, one `TrainResult` (model + history) out.

Every page that trains goes through `train(config, on_progress)`. The modules, one concern each:

- `config`    `TrainConfig` (its cache key and its one validation), `SEEDS_RELU_CNN`, stacks;
- `inputs`    the images a config trains on: loading, class filter, source, input scaling;
- `results`   `Progress` (while running) and `TrainResult` (at the end);
- `progress`  the progress reporter and the one rule that says a run diverged;
- `engine`    `train`: model set-up, warm start, the fast loop and the `model.fit` loop;
- `cache`     the disk cache of finished runs (`$CNNVIZ_CACHE_DIR`, default `~/.cache/cnnviz`);
- `jobs`      `Job`, background work for Streamlit pages, `training_job`, and `JobRegistry`
              (the server's jobs: shared by key, held by sessions, stopped when orphaned);
- `seeds`     `train_seeds`: one config, several seeds, one result per seed;
- `seed_stack` the seeds of one config trained together in one vectorised model;
- `queue`     the cap on concurrent trainings; `replay`, `warmup`, `augmenter`.

TensorFlow and Keras are imported lazily inside functions: importing this package is cheap.
"""

from cnnviz.training.cache import cache_dir, is_cached, load_cached, store_cached
from cnnviz.training.config import AUGMENTATIONS, OPTIMIZERS, SEEDS_RELU_CNN, TrainConfig, freeze_stack
from cnnviz.training.engine import train
from cnnviz.training.inputs import data_source
from cnnviz.training.jobs import Job, JobRegistry, training_job
from cnnviz.training.progress import divergence_threshold
from cnnviz.training.results import Progress, TrainResult
from cnnviz.training.seeds import DEFAULT_SEEDS, seed_configs, seed_list, train_seeds

__all__ = [
    "AUGMENTATIONS", "OPTIMIZERS", "SEEDS_RELU_CNN", "Job", "JobRegistry", "Progress", "TrainConfig", "TrainResult",
    "cache_dir", "data_source", "divergence_threshold", "freeze_stack", "is_cached", "load_cached",
    "store_cached", "train", "training_job", "DEFAULT_SEEDS", "seed_configs", "seed_list", "train_seeds",
]
