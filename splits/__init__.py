"""Split builders: one module per benchmark plus the shared pieces (features, clusters, profiles,
carving). Importing the package registers every benchmark and feature extractor."""

from splits import fashion, features, imagefolder, imagenet, mscoco  # noqa: F401  (registration)
