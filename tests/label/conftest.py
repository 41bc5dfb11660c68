import sys
from pathlib import Path

# helpers shared by the label tests and bench/label_throughput.py (chat_stub, competition_style)
sys.path.insert(0, str(Path(__file__).parent))
