"""Dataset script for ``datasets`` < 4 (loading scripts were removed in 4.0).

    datasets.load_dataset("imagenet_think.py", "pairs", data_dir="path/to/corpus", trust_remote_code=True)

With no ``data_dir``/``data_files`` it reads the Hub copy (``krishnateja95/ImageNet-Think``);
``data_dir="sample"`` reads the bundled sample.  All the work is done by the installed
package's builder (``pip install imagenet-think``); on ``datasets`` >= 4 use
``imagenet_think.load_dataset(...)`` or ``datasets.load_dataset(<exported dir>)`` instead.
``import imagenet_think`` never imports this file: the package directory wins.
"""

import datasets

from imagenet_think.builder import ImageNetThink as _PackageBuilder
from imagenet_think.loading import resolve_source


class ImagenetThink(_PackageBuilder):
    """The package's builder, resolving its Parquet files when none are given."""

    def _split_generators(self, dl_manager):
        if not self.config.data_files:
            source = self.config.data_dir or "imagenet-think"
            self.config.data_files = datasets.data_files.DataFilesDict(
                {split: datasets.data_files.DataFilesList(files, [None] * len(files))
                 for split, files in resolve_source(source)[0].items()}
            )
        return super()._split_generators(dl_manager)
