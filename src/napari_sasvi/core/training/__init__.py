"""Training overseers: the published recipes (Mask R-CNN, DETR, Mask2Former) and a pixel classifier
that trains in seconds, from the datasets' layouts, any labelled folder or painted napari layers."""
