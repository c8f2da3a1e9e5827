"""The thin napari shell: reader, writer, sample data and widgets over the core library."""
