"""Files the package ships beside its code: the plugin icon (napari.yaml: icon), drawn by docs/make_icon.py."""
