"""Hard weight sharing as weight-space transformations ``W = T(theta)``."""

from wsjax.sharing.core import (
    SharedParams,
    Static,
    Transform,
    bind,
    chain,
    count_params,
    flatten_paths,
    free_params,
    identity,
    path_str,
    per_leaf,
    select,
    virtual_params,
)
