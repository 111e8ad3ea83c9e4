"""tfcr: conditional retrieval for recommender systems on TensorFlow Recommenders."""

import setuptools

# The stack is pinned together: ScaNN's TF ops are built for TF 2.20 only, and
# tensorflow-serving-api 2.21 needs TF 2.21.
INSTALL_REQUIRES = [
    "tensorflow==2.20.*",
    "tf-keras==2.20.*",
    "tensorflow-recommenders==0.7.7",
    "scann[tf]==1.4.2",
    "tensorflow-datasets>=4.9,<5",
    "tensorflow-serving-api==2.20.0",
    "absl-py>=2.1",
    "importlib_resources",  # tensorflow-datasets 4.9.10 imports it without declaring it
    "numpy>=1.26",
    "starlette>=0.40",
    "uvicorn[standard]>=0.30",  # httptools + uvloop: a C HTTP parser and event loop
    "grpcio>=1.60",
    "matplotlib>=3.8",  # tfcr-eval plots
    "pandas>=2",  # tfcr.data.dataframes: your own data as DataFrames
    "pyarrow>=14",  # tfcr.data.files: your own tables as Parquet, CSV, TSV or JSON lines
    "requests>=2.28",  # tfcr.client: the model server's REST API
    # The catalog in Milvus (--index=milvus, tfcr.client.MilvusClient); 3.x leaves
    # protobuf and grpcio as TF 2.20 and tensorflow-serving-api have them.
    "pymilvus>=3.0,<4",
    "milvus-lite>=3.2,<4",  # Milvus Lite: a local file URI, for tests and development
]

EXTRAS_REQUIRE = {
    "test": ["pytest>=8", "httpx>=0.27",
             "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29"],  # runs notebooks/
}

setuptools.setup(
    name="tfcr",
    version="0.1.0",
    description="Conditional retrieval (user + condition -> items) on TensorFlow "
                "Recommenders, served as one SavedModel.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.13",  # 3.11 is what CI runs; 3.12 for Colab
    packages=setuptools.find_packages(include=["tfcr", "tfcr.*", "trainer", "trainer.*",
                                               "serving", "serving.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["tfcr-train=trainer.train:run",
                                       "tfcr-export=serving.export:run",
                                       "tfcr-serve=serving.server:run",
                                       "tfcr-eval=trainer.evaluate:run",
                                       "tfcr-milvus-query=serving.milvus_query:run"]},
)
