"""Every notebook in notebooks/ runs top to bottom (small settings), in a kernel of this
Python; none is stored with outputs."""

import glob
import os
import sys

import nbformat
import pytest
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))


def _run(nb, cwd, timeout=600):
  NotebookClient(nb, timeout=timeout, kernel_name="python3",
                 resources={"metadata": {"path": str(cwd)}}).execute()
  return nb


def test_the_three_notebooks_exist():
  assert [os.path.basename(p) for p in NOTEBOOKS] == [
      "quickstart.ipynb", "serving.ipynb", "your_own_data.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_stored_without_outputs(path):
  nb = nbformat.read(path, as_version=4)
  nbformat.validate(nb)
  for cell in nb.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
  first = nb.cells[1].source
  assert '"google.colab" in sys.modules' in first and "pip install" in first


def test_kernel_is_this_python(tmp_path):
  nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
      "import sys; print(sys.executable)")])
  output = _run(nb, tmp_path, timeout=120).cells[0].outputs[0]["text"].strip()
  assert os.path.realpath(output) == os.path.realpath(sys.executable)


@pytest.mark.slow  # real MovieLens, one epoch per model
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
  monkeypatch.setenv("TFCR_NOTEBOOK_SMALL", "1")
  monkeypatch.setenv("TFCR_NOTEBOOK_WORKDIR", str(tmp_path / "runs"))
  nb = _run(nbformat.read(path, as_version=4), tmp_path)
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]
  assert not errors
  assert sorted(os.listdir(tmp_path / "runs"))  # models and exports went to the work dir
