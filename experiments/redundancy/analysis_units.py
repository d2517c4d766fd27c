"""The redundancy study's analysis unit: spectra, within-layer prediction, between-layer
subspaces and representation similarity of one trained net (no training)."""

from __future__ import annotations

import jax
import numpy as np

from experiments.redundancy import config
from experiments.redundancy.run import accuracy, data_of, trained
from wsjax import analysis
from wsjax.analysis import within_layer_predictability
from wsjax.sharing import flatten_paths
from wsjax.sharing.predicted import pixel_coordinates, se_kernel


def _kernels(params) -> dict:
    return {p: np.asarray(w) for p, w in flatten_paths(params).items() if p.endswith("kernel")}


def analysis_metrics(unit: dict, quick: bool) -> dict:
    model, params = trained(unit, quick)
    _, val, test = data_of(unit)
    kernels = _kernels(params)
    spectra = {p: analysis.singular_values(w) for p, w in kernels.items()}
    layers = {p: {"shape": list(kernels[p].shape), "effective_rank": analysis.effective_rank(s),
                  "energy_rank_90": analysis.energy_rank(s, 0.9), "energy_rank_99": analysis.energy_rank(s, 0.99),
                  "max_rank": int(len(s)), "singular_values": [float(v) for v in s]}
              for p, s in spectra.items()}
    redundancy = {}
    first, image, length_scale = config.FIRST_LAYER[unit["model"]]
    coords = pixel_coordinates(image)
    kernel = se_kernel(coords, length_scale)
    w = kernels[first].reshape(len(coords), -1)
    shuffled = w[np.random.default_rng(unit["seed"]).permutation(len(w))]  # same values, no spatial order
    key = jax.random.key(unit["seed"])
    ridge = config.PREDICT_RIDGE
    within = {"layer": first, "length_scale": length_scale, "ridge": ridge, "fractions": list(config.PREDICT_FRACTIONS),
              "error": [within_layer_predictability(w, f, kernel, ridge, key) for f in config.PREDICT_FRACTIONS],
              "error_shuffled": [within_layer_predictability(shuffled, f, kernel, ridge, key)
                                 for f in config.PREDICT_FRACTIONS]}
    for i, group in enumerate(config.BASIS_GROUPS.get(unit["model"], [])):
        ws = {p: kernels[p] for p in group}
        rows = analysis.redundancy_table(ws, unit["ranks"])
        paths = list(ws)
        adjacent = [analysis.subspace_overlap(ws[a], ws[b], r) for r in unit["ranks"]
                    for a, b in zip(paths, paths[1:]) if r <= min(ws[a].shape[0], ws[a].shape[-1])]
        matched = [analysis.matched_filter_cosine(ws[a].reshape(-1, ws[a].shape[-1]),
                                                  ws[b].reshape(-1, ws[b].shape[-1])).mean for a, b in zip(paths, paths[1:])]
        redundancy[str(i)] = {"paths": paths, "table": rows, "adjacent_overlap": adjacent,
                              "adjacent_matched_cosine": [float(m) for m in matched]}
    x = val[0][: unit["examples"]]
    # the ViT's token outputs averaged over tokens: its 'cls' choice would read the patch embedding's
    # token 0, the top-left patch, which is blank (constant) in Fashion-MNIST
    reps = analysis.hidden_representations(model, params, x, tokens="mean")
    names = list(reps)
    cka = analysis.cka_matrix([reps[n] for n in names])
    return {"layers": layers, "redundancy": redundancy, "within_layer": within, "cka_layers": names, "cka": np.asarray(cka).tolist(),
            "test_accuracy": accuracy(lambda p, x: model.apply({"params": p}, x), params, test)}


