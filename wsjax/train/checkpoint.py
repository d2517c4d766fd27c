"""Orbax checkpoints of a training run: parameters, optimizer state, epoch and history.

A run resumes from its latest checkpoint; because each epoch's shuffle is derived from
``fold_in(seed, epoch)`` there is no RNG state to save, so a resumed run retraces the
uninterrupted one exactly.

Checkpoints are atomic: Orbax writes each step into a ``<step>.orbax-checkpoint-tmp``
folder and renames it to ``<step>`` only once every file is written (a commit-file
protocol on file systems without atomic renames), ``latest_step()`` sees finished steps
only, and an older step is deleted only after a newer one is finished. A run killed at any
moment therefore resumes from its last finished checkpoint; the temporary folder it leaves
is removed (in the background, before the first save) when the next run opens the folder.
Tested by killing a trainer with SIGKILL mid-save (tests/test_atomic_writes.py).
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


def manager(directory: str) -> ocp.CheckpointManager:
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(directory, options=options)


def save(mgr: ocp.CheckpointManager, epoch: int, theta, opt_state, history) -> None:
    mgr.save(
        epoch,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave({"theta": theta, "opt_state": opt_state}),
            history=ocp.args.JsonSave({"history": history}),
        ),
    )


def restore_latest(mgr: ocp.CheckpointManager, theta, opt_state):
    """``(theta, opt_state, epoch, history)`` from the latest checkpoint, or None."""
    epoch = mgr.latest_step()
    if epoch is None:
        return None
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"theta": theta, "opt_state": opt_state})
    try:
        out = mgr.restore(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target),
                history=ocp.args.JsonRestore(),
            ),
        )
    except Exception as e:
        raise ValueError(
            f"cannot resume from checkpoint {epoch} in {mgr.directory}: it does not match this "
            f"run's parameters/optimizer ({type(e).__name__}: {e}). Use a new checkpoint_dir."
        ) from e
    state = out["state"]
    return state["theta"], state["opt_state"], int(epoch), list(out["history"]["history"])
