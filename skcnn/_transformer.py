"""What the image transformers share (baselines, pretrained features)."""

from __future__ import annotations

from sklearn.base import ClassNamePrefixFeaturesOutMixin

__all__ = ["ImageTransformerMixin", "flat_for_frames"]


def flat_for_frames(estimator, out):
    """Images for a data-frame output (``set_output(transform="pandas")``):
    one column per value, in the order of ``get_feature_names_out``."""
    from sklearn.utils._set_output import _get_output_config

    if (
        out.ndim > 2
        and _get_output_config("transform", estimator)["dense"] != "default"
    ):
        return out.reshape(len(out), -1)
    return out


class ImageTransformerMixin(ClassNamePrefixFeaturesOutMixin):
    """sklearn plumbing of the transformers that turn images into float32
    features (baselines, pretrained features): feature names and tags."""

    @property
    def _n_features_out(self):
        # Read by ClassNamePrefixFeaturesOutMixin.get_feature_names_out.
        return self.n_features_out_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
