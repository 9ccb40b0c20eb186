package api

import (
	"encoding/base64"
	"fmt"
)

// RunRequest is one run asked of the server (POST /v1/runs): a language with code or
// files, or a command, with stdin, arguments, environment and limits. Text fields are
// UTF-8; a file or stdin that is not says "encoding": "base64".
type RunRequest struct {
	Language string `json:"language,omitempty"`
	Code     string `json:"code,omitempty"`
	// CodeFile names the file that runs: the name Code is written to, or one of Files.
	CodeFile string   `json:"code_file,omitempty"`
	Command  []string `json:"command,omitempty"`
	Args     []string `json:"args,omitempty"`
	Files    []File   `json:"files,omitempty"`
	Stdin    string   `json:"stdin,omitempty"`
	// StdinEncoding is "base64" when Stdin is base64 (default: the text itself).
	StdinEncoding string            `json:"stdin_encoding,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	// Combined gives the program one output stream (2>&1), in the order written.
	Combined bool   `json:"combined,omitempty"`
	Limits   Limits `json:"limits,omitzero"`
}

// File is an input file of a RunRequest.
type File struct {
	Name       string `json:"name"`
	Content    string `json:"content"`
	Encoding   string `json:"encoding,omitempty"` // "base64", or empty for UTF-8 text
	Executable bool   `json:"executable,omitempty"`
}

// Decode returns the file's bytes.
func (f File) Decode() ([]byte, error) { return decode(f.Content, f.Encoding, "file "+f.Name) }

// DecodeStdin returns the request's stdin bytes.
func (r RunRequest) DecodeStdin() ([]byte, error) { return decode(r.Stdin, r.StdinEncoding, "stdin") }

func decode(s, encoding, what string) ([]byte, error) {
	switch encoding {
	case "", "utf8", "utf-8", "text":
		return []byte(s), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%s: invalid base64: %w", what, err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("%s: unknown encoding %q (want base64, or none for UTF-8 text)", what, encoding)
	}
}

// Language describes one language a server runs (GET /v1/languages).
type Language struct {
	Name       string   `json:"name"`
	Aliases    []string `json:"aliases,omitempty"`
	Extensions []string `json:"extensions,omitempty"`
	Version    string   `json:"version,omitempty"`
}

// Error is the body of every error response of the server.
type Error struct {
	Error string `json:"error"`
	// Field names the request field at fault, for a 400.
	Field string `json:"field,omitempty"`
}
