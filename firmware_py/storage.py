"""Small files on the box's flash, written atomically (write a temp file, then rename):
a power cut leaves the old file or the new one, never half of one."""
import os


class FileStore:
    def __init__(self, folder):
        self.folder = folder.rstrip("/") or "/"

    def _path(self, name):
        return self.folder + "/" + name if self.folder != "/" else "/" + name

    def read(self, name):
        try:
            with open(self._path(name)) as f:
                return f.read()
        except OSError:
            return None

    def write(self, name, text):
        path = self._path(name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        try:
            os.rename(tmp, path)
        except OSError:          # some filesystems refuse to rename over a file
            os.remove(path)
            os.rename(tmp, path)


class MemoryStore:
    """The same interface in RAM: for tests, and for boxes told not to write flash."""

    def __init__(self, files=None):
        self.files = dict(files or {})
        self.writes = 0

    def read(self, name):
        return self.files.get(name)

    def write(self, name, text):
        self.writes += 1
        self.files[name] = text
