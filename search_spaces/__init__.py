"""Search spaces: Optuna trials build candidate Keras networks.

Only Keras here (imported lazily); ``predictors`` and ``hwnas`` build on this layer.

```
import search_spaces
search_spaces.names()       # ['fbnet', 'image_classification', 'keyword_spotting', 'nasbench201', ...]
space = search_spaces.get("nasbench201", dataset="ImageNet16-120")
arch = space.suggest(trial)     # or space.sample(numpy_rng), space.decode(...)
model = space.build(arch)       # keras.Model, batch 1
space.encode(arch), space.arch_id(arch)
```
"""
from __future__ import annotations

from search_spaces._base import (
    Arch,
    Chooser,
    InvalidArchError,
    InvalidOptionError,
    Option,
    SearchSpace,
    SearchSpaceError,
    from_encoded,
    get,
    list_spaces,
    names,
    read_archs,
    register_space,
)
from search_spaces._quiet import import_keras, import_tensorflow
from search_spaces.errors import HwnasError

# the shipped spaces register themselves on import (no TensorFlow import here)
from search_spaces.image_classification import ImageClassificationSpace
from search_spaces.keyword_spotting import KeywordSpottingSpace
from search_spaces.keyword_transformer import KeywordTransformerSpace
from search_spaces.super_resolution import SuperResolutionSpace
from search_spaces.object_detection import ObjectDetectionSpace
from search_spaces.nasbench201 import NASBench201Space
from search_spaces.fbnet import FBNetSpace
from search_spaces.generic import GenericSpace
from search_spaces.breadth import BreadthSpace
from search_spaces.mobile import MobileSpace
from search_spaces.audio import AudioSpace
from search_spaces.streaming import StreamingSpace

__all__ = [
    "Arch",
    "AudioSpace",
    "BreadthSpace",
    "MobileSpace",
    "Chooser",
    "FBNetSpace",
    "GenericSpace",
    "HwnasError",
    "ImageClassificationSpace",
    "InvalidArchError",
    "InvalidOptionError",
    "KeywordSpottingSpace",
    "KeywordTransformerSpace",
    "NASBench201Space",
    "ObjectDetectionSpace",
    "Option",
    "SearchSpace",
    "SearchSpaceError",
    "StreamingSpace",
    "SuperResolutionSpace",
    "from_encoded",
    "get",
    "import_keras",
    "import_tensorflow",
    "list_spaces",
    "names",
    "read_archs",
    "register_space",
]
