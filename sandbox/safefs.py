"""File operations confined to one directory tree whose contents a sandbox controls.

A sandboxed process can plant symbolic links and hard links in its work dir. A host
process that then opens `workdir/link/...` by path lets the kernel follow them out of
the work dir (`ln -s /etc e` then a read of `e/shadow`, `ln -s /root r` then a write of
`r/planted`). Here a path is walked one component at a time from an open directory
descriptor, each component opened with O_NOFOLLOW, so the kernel never follows a link
for us. A symlink met on the way is resolved by hand: followed while it stays inside the
tree (a relative target, or an absolute one under the sandbox's work dir), refused
otherwise. A regular file with more than one hard link is refused (its other name may be
outside). Special files (fifos, devices) are never opened for data.

Only the standard library is imported: the docker backend runs this file inside the
container as a script (`python3 -c SOURCE get|put WORKDIR PATH`), so the same rules hold
there; bwrap and local call it in-process on the host work dir.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import posixpath
import stat
import sys
import tarfile

MAX_LINKS = 40  # symlinks followed per path, as the kernel's limit
MAX_DEPTH = 256  # directory levels walked for one path, or copied in one archive
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in for a file must not block the host; no effect on files.
FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
EXIT_PATH_ERROR = 3  # the script's exit status for a PathError (message on stderr)


class PathError(Exception):
    """A path that does not exist, has the wrong type, or would leave the tree."""


def _as_path_error(method):
    """OSErrors (a path the sandbox changed under us, a full disk) become PathError."""
    @functools.wraps(method)
    def wrapper(self: Tree, path: str, *args: object, **kwargs: object):
        try:
            return method(self, path, *args, **kwargs)
        except OSError as e:
            raise PathError(f"{self._show(path)}: {e.strerror or e}") from None
    return wrapper


class Tree:
    """A directory tree opened by descriptor.

    `label`: the absolute path the tree is known by to the sandbox (e.g. "/workspace"):
    absolute symlink targets under it are followed, and messages name paths under it.
    `absolute_links`: whether absolute symlink targets mean `label` paths (inside a
    sandbox) or host paths (a host directory: always refused).
    """

    def __init__(self, root: str, label: str, absolute_links: bool = True):
        try:
            self.fd = os.open(root, DIR_FLAGS)
        except OSError as e:
            raise PathError(f"{label}: {e.strerror}") from None
        self.label = posixpath.normpath(label)
        self.absolute_links = absolute_links

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public operations; `path` is relative to the tree's root ("" is the root)
    @_as_path_error
    def read(self, path: str) -> bytes:
        """The bytes of the regular file `path`."""
        fd = self._open_file(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    @_as_path_error
    def write(self, path: str, data: bytes, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
        """Create or overwrite the regular file `path` (missing parent dirs are made)."""
        fd = self._open_file(path, os.O_WRONLY | os.O_CREAT, mode & 0o777, create_dirs=True, owner=owner)
        with os.fdopen(fd, "wb") as f:
            os.ftruncate(fd, 0)
            f.write(data)
            os.fchmod(fd, mode & 0o777)
            if owner is not None:
                os.fchown(fd, *owner)

    @_as_path_error
    def open_dir(self, path: str) -> int:
        """An fd of the directory `path` (PathError if it is missing or not a directory)."""
        parent, name = self._locate(path)
        if not name:
            return parent
        try:
            return self._open_subdir(parent, name, path)
        finally:
            os.close(parent)

    @_as_path_error
    def archive(self, path: str, arcname: str | None = None) -> bytes:
        """A tar archive of `path` (a file, or a directory and everything under it) named
        `arcname` (default: its base name). Symlinks inside a directory are stored as
        links, never followed; special files are left out; a file with several hard links
        is refused."""
        parent, name = self._locate(path)
        if arcname is None:
            arcname = name or posixpath.basename(self.label) or "."
        buf = io.BytesIO()
        try:
            fd = self._open_entry(parent, name, path)
        finally:
            os.close(parent)
        with tarfile.open(fileobj=buf, mode="w") as tar:
            self._add(tar, fd, arcname, path, 0)
        return buf.getvalue()

    @_as_path_error
    def extract(self, path: str, archive: bytes, owner: tuple[int, int] | None = None) -> None:
        """Unpack a tar archive into the directory `path` (made if missing). Member names
        must be relative without `..`; symlinks must be relative and point inside the
        unpacked tree; hard links become copies; special files are refused."""
        os.close(self._open_dir(path, owner))
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for member in tar:
                name = _member_name(member.name)
                if not name:
                    if not member.isdir():
                        raise PathError(f"{self._show(path)}: the source is not a directory")
                    continue
                full = posixpath.join(path, name) if path else name
                if member.isdir():
                    os.close(self._open_dir(full, owner, member.mode & 0o777 | 0o700))
                elif member.isfile() or member.islnk():
                    try:
                        data = tar.extractfile(member)
                    except KeyError:  # a hard link to a member the archive lacks
                        raise PathError(f"{self._show(full)}: hard link to a missing file") from None
                    self.write(full, data.read() if data is not None else b"", member.mode, owner)
                elif member.issym():
                    self._symlink(full, name, member.linkname, owner)
                else:
                    raise PathError(f"{self._show(full)}: special files (devices, fifos) cannot be copied")

    # -- walking
    def _locate(self, path: str, create_dirs: bool = False, owner: tuple[int, int] | None = None,
                follow_last: bool = True) -> tuple[int, str]:
        """(an open fd of the directory that holds `path`'s last component, that name);
        the name is "" when `path` is the root itself. Symlinks on the way (and the last
        one, if `follow_last`) are followed inside the tree; one leading out raises."""
        todo = _parts(path)
        stack = [os.dup(self.fd)]  # the real directories from the root down: ".." pops one
        links = 0
        try:
            while todo:
                name = todo.pop(0)
                if name == "..":
                    if len(stack) == 1:
                        raise PathError(f"{self._show(path)}: leads outside {self.label}")
                    os.close(stack.pop())
                    continue
                st = _lstat(stack[-1], name)
                if st is not None and stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                    links += 1
                    if links > MAX_LINKS:
                        raise PathError(f"{self._show(path)}: too many levels of symbolic links")
                    target = os.readlink(name, dir_fd=stack[-1])
                    if target.startswith("/"):
                        todo[:0] = self._absolute_target(target, path)
                        for fd in stack[1:]:
                            os.close(fd)
                        del stack[1:]
                    else:
                        todo[:0] = _parts(target)
                    continue
                if not todo:
                    return stack.pop(), name
                if st is None:
                    if not create_dirs:
                        raise PathError(f"{self._show(path)}: no such file or directory")
                    self._mkdir(stack[-1], name, 0o755, owner)
                if len(stack) > MAX_DEPTH:  # each level holds an fd: never exhaust the host's
                    raise PathError(f"{self._show(path)}: more than {MAX_DEPTH} directory levels")
                stack.append(self._open_subdir(stack[-1], name, path))
            return stack.pop(), ""
        finally:
            for fd in stack:
                os.close(fd)

    def _absolute_target(self, target: str, path: str) -> list[str]:
        """The components, below the root, of an absolute symlink target."""
        parts = [p for p in target.split("/") if p and p != "."]
        prefix = [p for p in self.label.split("/") if p]
        if not self.absolute_links or parts[:len(prefix)] != prefix:
            raise PathError(f"{self._show(path)}: a symbolic link on the way points outside {self.label} "
                            f"(to {target})")
        return parts[len(prefix):]

    def _open_subdir(self, parent: int, name: str, path: str) -> int:
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                raise PathError(f"{self._show(path)}: {name} is not a directory") from None
            raise PathError(f"{self._show(path)}: {e.strerror}") from None

    def _open_dir(self, path: str, owner: tuple[int, int] | None, mode: int = 0o755) -> int:
        parent, name = self._locate(path, create_dirs=True, owner=owner)
        if not name:
            return parent
        try:
            if _lstat(parent, name) is None:
                self._mkdir(parent, name, mode, owner)
            return self._open_subdir(parent, name, path)
        finally:
            os.close(parent)

    def _mkdir(self, parent: int, name: str, mode: int, owner: tuple[int, int] | None) -> None:
        try:
            os.mkdir(name, mode, dir_fd=parent)
        except FileExistsError:
            return
        if owner is not None:
            os.chown(name, *owner, dir_fd=parent, follow_symlinks=False)

    def _open_file(self, path: str, flags: int, mode: int = 0o644, create_dirs: bool = False,
                   owner: tuple[int, int] | None = None) -> int:
        """An fd of the regular, singly linked file `path`, opened with `flags`."""
        parent, name = self._locate(path, create_dirs=create_dirs, owner=owner)
        try:
            if not name:
                raise PathError(f"{self._show(path)} is a directory")
            try:
                fd = os.open(name, flags | FILE_FLAGS, mode, dir_fd=parent)
            except OSError as e:
                if e.errno == errno.ELOOP:  # became a symlink after we looked
                    raise PathError(f"{self._show(path)} is a symbolic link") from None
                if e.errno == errno.ENOENT:
                    raise PathError(f"{self._show(path)}: no such file or directory") from None
                raise PathError(f"{self._show(path)}: {e.strerror}") from None
        finally:
            os.close(parent)
        try:
            self._check_file(os.fstat(fd), path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check_file(self, st: os.stat_result, path: str) -> None:
        if stat.S_ISDIR(st.st_mode):
            raise PathError(f"{self._show(path)} is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise PathError(f"{self._show(path)} is not a regular file")
        if st.st_nlink > 1:
            raise PathError(f"{self._show(path)} has {st.st_nlink} hard links; refused, as one may lead "
                            f"outside {self.label}")

    def _open_entry(self, parent: int, name: str, path: str) -> int:
        """An fd of the file or directory `name` in `parent` (the root itself if "")."""
        if not name:
            return os.dup(parent)
        try:
            return os.open(name, os.O_RDONLY | FILE_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno == errno.ENOENT:
                raise PathError(f"{self._show(path)}: no such file or directory") from None
            raise PathError(f"{self._show(path)}: {e.strerror}") from None

    def _add(self, tar: tarfile.TarFile, fd: int, arcname: str, path: str, depth: int) -> None:
        """Add the open file or directory `fd` (closed here) to `tar` as `arcname`."""
        try:
            st = os.fstat(fd)
            info = tarfile.TarInfo(arcname)
            info.mode, info.mtime, info.uid, info.gid = stat.S_IMODE(st.st_mode), int(st.st_mtime), st.st_uid, st.st_gid
            if stat.S_ISDIR(st.st_mode):
                if depth > MAX_DEPTH:
                    raise PathError(f"{self._show(path)}: more than {MAX_DEPTH} directory levels")
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                for name in sorted(os.listdir(fd)):
                    child = posixpath.join(path, name) if path else name
                    st_child = _lstat(fd, name)
                    if st_child is None:
                        continue  # removed meanwhile
                    if stat.S_ISLNK(st_child.st_mode):
                        link = tarfile.TarInfo(f"{arcname}/{name}")
                        link.type, link.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=fd)
                        tar.addfile(link)
                    elif stat.S_ISDIR(st_child.st_mode) or stat.S_ISREG(st_child.st_mode):
                        self._add(tar, self._open_entry(fd, name, child), f"{arcname}/{name}", child, depth + 1)
                return
            self._check_file(st, path)
            info.size = st.st_size
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            info.size = len(data)  # the file may have changed since fstat
            tar.addfile(info, io.BytesIO(data))
        finally:
            os.close(fd)

    def _symlink(self, full: str, name: str, target: str, owner: tuple[int, int] | None) -> None:
        inside = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if target.startswith("/") or inside == ".." or inside.startswith("../"):
            raise PathError(f"{self._show(full)}: symbolic link to {target} points outside the copied tree")
        parent, last = self._locate(full, create_dirs=True, owner=owner, follow_last=False)
        try:
            st = _lstat(parent, last)
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise PathError(f"{self._show(full)} is a directory")
            if st is not None:
                os.unlink(last, dir_fd=parent)
            os.symlink(target, last, dir_fd=parent)
            if owner is not None:
                os.chown(last, *owner, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)

    def _show(self, path: str) -> str:
        return posixpath.join(self.label, path) if path else self.label


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def _member_name(name: str) -> str:
    """A tar member's name as a relative path; PathError for absolute names or `..`."""
    parts = _parts(name)
    if name.startswith("/") or ".." in parts:
        raise PathError(f"archive member {name!r} would be written outside its directory")
    return "/".join(parts)


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def main(argv: list[str]) -> int:
    """`get WORKDIR PATH` writes a tar of the directory PATH to stdout (members relative
    to it); `read WORKDIR PATH` writes the file's bytes; `put WORKDIR PATH` unpacks the
    tar on stdin into PATH. PATH is relative to WORKDIR. Errors: a line on stderr, exit 3."""
    op, workdir, path = argv
    try:
        with Tree(workdir, workdir) as tree:
            if op == "get":
                sys.stdout.buffer.write(tree.archive(path, "."))
            elif op == "read":
                sys.stdout.buffer.write(tree.read(path))
            elif op == "put":
                tree.extract(path, sys.stdin.buffer.read())
            else:
                raise PathError(f"unknown operation {op!r}")
    except PathError as e:
        sys.stderr.write(f"{e}\n")
        return EXIT_PATH_ERROR
    except (OSError, tarfile.TarError) as e:
        sys.stderr.write(f"{posixpath.join(workdir, path)}: {getattr(e, 'strerror', None) or e}\n")
        return EXIT_PATH_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
