"""The napari-sasvi core library: no napari, qtpy or magicgui imports here (a test enforces it)."""
