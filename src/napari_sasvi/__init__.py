"""napari-sasvi: SASVi (Segment Any Surgical Video) as a napari plugin, a CLI and a library.

Importing the package pulls in neither torch nor Qt; the library lives in ``napari_sasvi.core``,
the napari shell in ``napari_sasvi._napari``.
"""

__version__ = "0.1.0"
