"""Class names and their fixed order, for each task.

The order is part of every model's contract: index i of a model's output is
``TASKS[task][i]``. The names are the CSV's own spellings in FETAL_PLANES_DB.
"""

from __future__ import annotations

from edge.errors import FetalPlanesError

#: task ``planes``: the six plane classes, in the CSV's ``Plane`` spelling (alphabetical, as in the paper).
PLANES: tuple[str, ...] = (
    "Fetal abdomen",
    "Fetal brain",
    "Fetal femur",
    "Fetal thorax",
    "Maternal cervix",
    "Other",
)

#: task ``brain``: the three brain sub-planes (CSV ``Brain_plane``) plus images of other planes.
NOT_A_BRAIN = "Not A Brain"
BRAIN: tuple[str, ...] = (
    "Trans-thalamic",
    "Trans-cerebellum",
    "Trans-ventricular",
    NOT_A_BRAIN,
)

#: brain images whose sub-plane is none of the three; left out of the brain task.
BRAIN_OTHER = "Other"

TASKS: dict[str, tuple[str, ...]] = {"planes": PLANES, "brain": BRAIN}


def labels_for(task: str) -> tuple[str, ...]:
    """The class names of ``task`` in output order."""
    try:
        return TASKS[task]
    except KeyError:
        raise FetalPlanesError(
            f"unknown task '{task}'", hint=f"use one of: {', '.join(TASKS)}"
        ) from None


SHORT_NAMES: dict[str, str] = {
    "Fetal abdomen": "Abdomen",
    "Fetal brain": "Brain",
    "Fetal femur": "Femur",
    "Fetal thorax": "Thorax",
    "Maternal cervix": "Cervix",
    "Other": "Other",
    "Trans-thalamic": "TT",
    "Trans-cerebellum": "TC",
    "Trans-ventricular": "TV",
    NOT_A_BRAIN: "Not brain",
}


def short_name(label: str) -> str:
    """A short display name for overlays and plots."""
    return SHORT_NAMES.get(label, label)
