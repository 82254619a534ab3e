"""What the image transformers share (baselines, pretrained features)."""

from __future__ import annotations

from sklearn.base import ClassNamePrefixFeaturesOutMixin

__all__ = ["ImageTransformerMixin"]


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
