package gitserve

import (
	"errors"
	"fmt"
	"strings"
)

// The git programs the server runs. Nothing else is ever executed for a client.
const (
	UploadPack    = "git-upload-pack"
	ReceivePack   = "git-receive-pack"
	UploadArchive = "git-upload-archive"
)

// Command is a client's request, as git sends it over SSH:
// `git-upload-pack '/stack.git'`.
type Command struct {
	// Service is UploadPack, ReceivePack or UploadArchive.
	Service string
	// Repo is the repository name the path argument names (no leading "/",
	// no ".git").
	Repo string
	// Op is git-lfs-transfer's operation: "upload" or "download".
	Op string
}

// Write reports whether the command changes the repository (a push, an
// LFS upload).
func (c Command) Write() bool {
	return c.Service == ReceivePack || c.Service == LFSTransfer && c.Op == "upload"
}

const commandSyntax = "this server runs only git-upload-pack, git-receive-pack, git-upload-archive and git-lfs-transfer on a repository: clone ssh://HOST:PORT/NAME.git"

// ParseCommand parses the command line of an SSH exec request with git-shell
// semantics: one of the three git services ("git-upload-pack" or
// "git upload-pack") or git-lfs-transfer (then followed by its operation,
// upload or download) and one repository path, single-quoted the way git
// quotes it ('/stack.git', 'it'\”s') or bare. The path maps to a repository
// name: a leading "/" and a trailing ".git" are dropped, and what remains must
// be a valid name (ValidName), so "..", other absolute paths and "~" never
// reach the file system.
func ParseCommand(line string) (Command, error) {
	if line == "" {
		return Command{}, errors.New("no command: " + commandSyntax)
	}
	if len(line) > 4096 {
		return Command{}, errors.New("command longer than 4096 bytes: " + commandSyntax)
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < ' ' || c == 0x7f {
			return Command{}, fmt.Errorf("command has a control character (%#02x): %s", c, commandSyntax)
		}
	}
	prog, arg, ok := strings.Cut(line, " ")
	if prog == "git" {
		var sub string
		sub, arg, ok = strings.Cut(arg, " ")
		prog = "git-" + sub
	}
	switch prog {
	case UploadPack, ReceivePack, UploadArchive, LFSTransfer:
	default:
		return Command{}, fmt.Errorf("command %q is not allowed: %s", prog, commandSyntax)
	}
	if !ok {
		return Command{}, fmt.Errorf("%s needs a repository argument: %s", prog, commandSyntax)
	}
	var op string
	if prog == LFSTransfer {
		i := strings.LastIndexByte(arg, ' ')
		if i < 0 {
			return Command{}, fmt.Errorf("%s needs a repository and an operation (upload or download)", prog)
		}
		arg, op = strings.TrimRight(arg[:i], " "), arg[i+1:]
		if op != "upload" && op != "download" {
			return Command{}, fmt.Errorf("%s: operation %q is neither upload nor download", prog, op)
		}
	}
	path, err := unquote(strings.TrimLeft(arg, " "))
	if err != nil {
		return Command{}, fmt.Errorf("%s: %w", prog, err)
	}
	name, err := RepoName(path)
	if err != nil {
		return Command{}, err
	}
	return Command{Service: prog, Repo: name, Op: op}, nil
}

// RepoName maps the path a git client asks for to a repository name:
// "/stack.git", "stack.git", "/stack" and "stack" all name "stack".
func RepoName(path string) (string, error) {
	name := strings.TrimPrefix(path, "/")
	name = strings.TrimSuffix(name, ".git")
	if err := ValidName(name); err != nil {
		return "", fmt.Errorf("invalid repository path %q: use /NAME.git or /GROUP/NAME.git (%s)", path, nameSyntax)
	}
	return name, nil
}

// unquote reads one shell word made of single-quoted parts, backslash-escaped
// characters between them (git writes ' as '\” and ! as '\!') and bare
// characters that need no quoting. Anything else, including a second word, is
// an error.
func unquote(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty repository argument: " + commandSyntax)
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated quote in the repository argument")
			}
			b.WriteString(s[i+1 : i+1+end])
			i += end + 2
		case c == '\\':
			if i+1 >= len(s) {
				return "", errors.New("trailing backslash in the repository argument")
			}
			b.WriteByte(s[i+1])
			i += 2
		case c == ' ':
			return "", errors.New("more than one argument: give one repository path")
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("/._-~+@:,=", c) >= 0:
			b.WriteByte(c)
			i++
		default:
			return "", fmt.Errorf("character %q in the repository argument needs quoting", c)
		}
	}
	return b.String(), nil
}

// extraCommand splits line into a command name and its arguments when it
// is a plain command (`ci logs -f 42`: words of letters, digits and
// -_./:@=, at most 16 of them), as the extra commands of Config take.
func extraCommand(line string) (name string, args []string, ok bool) {
	words := strings.Fields(line)
	if len(words) == 0 || len(words) > 16 || len(line) > 1024 {
		return "", nil, false
	}
	for _, w := range words {
		for _, c := range w {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:@=", c)) {
				return "", nil, false
			}
		}
	}
	return words[0], words[1:], true
}
