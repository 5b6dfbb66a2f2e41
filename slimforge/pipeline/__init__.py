"""Recipes that chain the stages: train -> prune -> distill -> quantize -> export -> report.

    recipe = load_recipe("recipes/digits.yaml", ["prune.ratio=0.3"])
    run_recipe(recipe, "runs/digits")
"""

from slimforge.pipeline.recipe import Recipe, StageConfig, load_recipe, parse_recipe
from slimforge.pipeline.stages import StageContext, list_stages, register_stage
from slimforge.pipeline.markers import read_marker
from slimforge.pipeline.runner import run_recipe

__all__ = ["Recipe", "StageConfig", "StageContext", "list_stages", "load_recipe", "parse_recipe", "read_marker", "register_stage", "run_recipe"]
