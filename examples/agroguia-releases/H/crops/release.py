# The release's name, shown on every page (a deploy tool's tests read which release answered).
RELEASE = "H"
