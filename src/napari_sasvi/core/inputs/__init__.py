"""Inputs: frames (folders, videos, arrays) as lazy stacks, the one label reader and where labels
come from, annotated frames (anchors), and the videos and jobs of a batch."""
