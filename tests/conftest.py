import os

from hypothesis import HealthCheck, Phase, settings

# scikit-learn's check_array_api_input (in test_estimators.py) runs only with SciPy's array API switch on, and
# SciPy reads it once, when first imported: set before any test module imports scikit-learn
os.environ.setdefault("SCIPY_ARRAY_API", "1")

settings.register_profile("default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None)
# for mutation testing (HYPOTHESIS_PROFILE=mutation mutmut run): the same few examples every time, so that each
# of thousands of mutants costs seconds; a mutant these miss may be killed with more examples (the rate is a floor)
# (and a failure is not shrunk: a mutant needs only to be caught, and shrinking a failure may take minutes)
settings.register_profile(
    "mutation",
    max_examples=10,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
