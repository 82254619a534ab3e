"""The models of ``skcnn compare`` and their groups, importable without torch
(the command line lists them in ``--help``)."""

# name -> seconds it took in the default digits run on 2 cores (progress ETA).
EXPECTED_S = {
    "pixels+rf": 2.2,
    "hist+rf": 2.0,
    "hog+svm": 2.2,
    "hog+pca+svm": 3.9,
    "pca+svm": 0.7,
    "pca+svm+noise": 1.0,
    "cnn": 5.0,
    "cnn+aug": 5.8,
    "cnn+noise": 5.5,
    "densenet": 34.0,
    "lite0+logreg": 13.0,
    "lite0-finetune": 6.6,
    "pretrained+logreg": 30.0,
    "densenet-finetune": 60.0,
}
MODEL_NAMES = tuple(EXPECTED_S)
EXPECTED_S["robustness"] = 11.0  # the shift profile of the 12 rows that run
GROUPS = {
    "classic": (
        "pixels+rf",
        "hist+rf",
        "hog+svm",
        "hog+pca+svm",
        "pca+svm",
        "pca+svm+noise",
    ),
    "networks": ("cnn", "cnn+aug", "cnn+noise", "densenet"),
    "transfer": (
        "lite0+logreg",
        "lite0-finetune",
        "pretrained+logreg",
        "densenet-finetune",
    ),
    "noise": ("pca+svm+noise", "cnn+noise"),
    "all": MODEL_NAMES,
}
