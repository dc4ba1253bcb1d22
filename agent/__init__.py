"""The agent layer: typed models, settings, the prompt chain and rules engine, the critic loop and the forge."""
