"""Official YouTube-8M features from video files: frames at 1 per second through Inception-v3
and PCA, audio through VGGish and its PCA, both quantised to 8 bits (winners_facts.md 6-7)."""
