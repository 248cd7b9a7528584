"""High-level representation guided denoisers (Liao et al. 2018, "Defense against adversarial
attacks using high-level representation guided denoiser").

A denoiser is trained in front of a frozen, already trained classifier on pairs of
(adversarial or clean, clean) images, guided by a loss on the classifier's response; at
test time `robust eval defense=hgd` puts it in front of that classifier (or another one).

Modules: settings (the `defense` config, checked), networks (DUNET and DAE), layers (hooks
on a classifier's layers), guides (pixel, fgd, lgd, cgd losses), pairs (the adversarial
training set, generated once and cached, or online), checkpoint (denoiser checkpoints),
training (`robust train defense=hgd`), evaluation (denoiser -> classifier under a threat
model), perturbation (the layer-wise error amplification of `robust analyze layers`).
Importing this package is cheap (no torch).
"""

DENOISER_NAMES = ("dunet", "dae")
GUIDE_NAMES = ("pixel", "fgd", "lgd", "cgd")
THREATS = ("full", "oblivious", "transfer")
COMBINES = ("pairs", "paths", "images")  # how several denoisers meet the classifier(s)
