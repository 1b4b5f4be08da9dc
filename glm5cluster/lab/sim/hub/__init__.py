"""A local model hub speaking the part of the Hugging Face Hub API huggingface_hub uses (lab only)."""
