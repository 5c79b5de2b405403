import os
import sys

# Test helpers (reference.py) import by name; importlib mode does not add tests/ to sys.path.
sys.path.insert(0, os.path.dirname(__file__))
