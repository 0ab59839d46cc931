"""Training data: the view dicts the training step reads, from BEDLAM and from our pseudo-label builds, mixed.

views (a sample's view dicts and the source base class), sampling (frames and ray-map views), cropping (crop, resize,
intrinsics), augment (normalisation, sequence-consistent colour jitter), bedlam (BEDLAM as the reference reads it),
labels (a ``human3r labels build --images frames`` as a source), buckets (aspect-ratio buckets, the batch sampler and
the loader), options (typed sources and mixtures), mixture (sources mixed by weight, the reference's string syntax),
parity (the loader against the training parity pack), pickles (restricted unpickler), errors.
"""
