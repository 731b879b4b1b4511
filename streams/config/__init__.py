"""Configuration: settings from the environment, the rules file, the topic layout."""
