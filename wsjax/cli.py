"""The ``wsjax`` command: ``list``, ``inspect``, ``run`` and ``compress``.

* ``wsjax list`` -- the studies (``experiments/`` of a checkout), pipeline stages, registered
  transforms and storage codecs;
* ``wsjax inspect FILE.wsjax`` -- the file's format version, its verified CRC-32, and the
  per-layer byte table (which codec stores each layer, bits per weight and index, bytes,
  compression), with totals;
* ``wsjax run STUDY [--quick] [--seed N] [--out DIR] [--dataset D]`` -- run a study of the
  checkout's ``experiments/``;
* ``wsjax compress --model lenet300100 --pipeline deep_compression --out FILE`` -- compress a
  reference model from a checkpoint (the committed pretrained net by default) with a named
  pipeline, write the file and print its size report.

User mistakes (a missing or corrupted file, an unknown study) end in one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import struct
import sys
import zlib

from wsjax.study import discover
from wsjax.study.args import ROOT


class UserError(Exception):
    """A mistake in the command line or its inputs: reported in one line."""


def cmd_list(args) -> None:
    from wsjax import compress
    from wsjax.sharing import registry
    from wsjax.storage import codecs

    found = discover.studies()
    print("studies:    " + (", ".join(found) if found else f"(none: no experiments/ beside {ROOT})"))
    print("stages:     " + ", ".join(compress.STAGES))
    print("transforms: " + ", ".join(registry.TRANSFORMS))
    print("codecs:     " + ", ".join(codecs.names()))


def cmd_inspect(args) -> None:
    from wsjax import storage

    try:
        with open(args.file, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"cannot read {args.file!r}: {e.strerror}") from None
    try:
        report = storage.size_report(data)
    except storage.StorageError as e:
        raise UserError(f"{args.file}: {e}") from None
    version = struct.unpack_from("<H", data, len(storage.MAGIC))[0]
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    assert zlib.crc32(data[:-4]) == crc  # size_report has checked it; this is what we print
    print(f"{args.file}: {len(data):,} bytes, wsjax storage format version {version}, CRC-32 {crc:08x} verified")
    print(f"{len(report.layers)} layers, {report.n_weights:,} weights ({report.n_nonzero:,} nonzero); "
          f"dense float32 {report.dense_bytes:,} bytes -> {report.file_bytes:,} stored, {report.compression:.1f}x\n")
    print(report.to_markdown())


def cmd_run(args, rest) -> None:
    try:
        run = discover.load(args.study)
    except ValueError as e:
        raise UserError(str(e)) from None
    run.main(rest)


PIPELINES = ("deep_compression", "hashednets")


def cmd_compress(args) -> None:
    import jax
    from flax import serialization

    from wsjax import compress, data, storage, study

    model = study.model_by_name(args.model)
    train = data.load(args.dataset, "train")
    if args.checkpoint is None:
        try:
            model, params, _ = study.pretrained(args.model, args.dataset, 0, train_if_missing=False)
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
    else:
        template = model.init(jax.random.key(0), train[0][:1])["params"]
        try:
            with open(args.checkpoint, "rb") as f:
                params = serialization.from_bytes(template, f.read())
        except OSError as e:
            raise UserError(f"cannot read checkpoint {args.checkpoint!r}: {e.strerror}") from None
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{args.checkpoint}: not a {args.model} checkpoint ({e})") from None
    if args.pipeline == "deep_compression":
        pipe = compress.deep_compression(args.sparsity, rounds=3, prune_epochs=args.epochs, quant_epochs=args.epochs)
    else:
        pipe = compress.hashednets(args.compression, epochs=args.epochs)
    val = (train[0][-5000:], train[1][-5000:])
    result = pipe.run(model, (train[0][:-5000], train[1][:-5000]), val, params=params, seed=args.seed,
                      label=f"{args.model} {args.pipeline}: ")
    report = storage.save(args.out, result.stored)
    print(report.to_markdown())
    print(f"wrote {args.out}: {report.file_bytes:,} bytes ({report.compression:.1f}x), "
          f"val accuracy {result.history[-1]['val_accuracy']:.4f}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wsjax", description="weight sharing and compression for JAX/Flax")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="studies, stages, transforms and codecs")
    i = sub.add_parser("inspect", help="a .wsjax file's per-layer byte table")
    i.add_argument("file")
    r = sub.add_parser("run", help="run a study (the rest of the line goes to it: --quick, --seed, --out ...)")
    r.add_argument("study")
    c = sub.add_parser("compress", help="compress a reference model from a checkpoint")
    c.add_argument("--model", choices=("lenet300100", "lenet5"), default="lenet300100")
    c.add_argument("--checkpoint", help="flax msgpack params (default: the committed pretrained net)")
    c.add_argument("--pipeline", choices=PIPELINES, default="deep_compression")
    c.add_argument("--sparsity", type=float, default=0.9, help="deep_compression: fraction pruned")
    c.add_argument("--compression", type=float, default=1 / 8, help="hashednets: free / virtual weights")
    c.add_argument("--epochs", type=int, default=2)
    c.add_argument("--dataset", default="fashion_mnist")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True)
    return p


def main(argv=None) -> int:
    args, rest = parser().parse_known_args(argv)
    if rest and args.command != "run":
        parser().error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "list":
            cmd_list(args)
        elif args.command == "inspect":
            cmd_inspect(args)
        elif args.command == "run":
            cmd_run(args, rest)
        else:
            cmd_compress(args)
    except UserError as e:
        print(f"wsjax {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
