// Command runc-capfix is an OCI runtime wrapper: it drops the capabilities the host's bounding set cannot
// grant from what runc is asked to give, then execs runc.
//
// Some VMs lack capabilities (e.g. CAP_SYS_RESOURCE) in their bounding set; runc then refuses every
// privileged container and privileged exec, which the buildx docker-container driver always uses. The set
// to drop is derived from CapBnd, so on a normal host the wrapper changes nothing. containerd's shim runs
// the runtime for every create, start, exec, state, kill and delete — about a dozen times per build — so
// the wrapper is a static binary (standard library only): the Python script it replaces cost about 30 ms
// of CPU per call, some 7 % of all the CPU a repeated cell used.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// capNames are the capabilities by bit number (linux/capability.h).
var capNames = []string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
	"SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN",
	"SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
	"AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND",
	"AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"}

// missingCaps names the capabilities whose bit is clear in a /proc/<pid>/status text's CapBnd.
func missingCaps(status string) (map[string]bool, error) {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bnd, err := strconv.ParseUint(strings.TrimSpace(rest), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("CapBnd %q: %w", rest, err)
			}
			missing := map[string]bool{}
			for i, name := range capNames {
				if bnd&(1<<i) == 0 {
					missing["CAP_"+name] = true
				}
			}
			return missing, nil
		}
	}
	return nil, fmt.Errorf("no CapBnd line")
}

// stripCaps removes the missing capabilities from every list of the capabilities object found under
// path (object keys) in a JSON document. Everything else, numbers included, is kept byte for byte; a
// document without that object comes back unchanged.
func stripCaps(doc []byte, missing map[string]bool, path ...string) ([]byte, error) {
	var object map[string]json.RawMessage
	if err := json.Unmarshal(doc, &object); err != nil {
		return nil, err
	}
	if object == nil {
		return doc, nil
	}
	if len(path) > 0 {
		inner, ok := object[path[0]]
		if !ok {
			return doc, nil
		}
		stripped, err := stripCaps(inner, missing, path[1:]...)
		if err != nil || bytes.Equal(stripped, inner) {
			return doc, err
		}
		object[path[0]] = stripped
		return encode(object)
	}
	changed := false
	for set, raw := range object {
		var names []string
		if json.Unmarshal(raw, &names) != nil {
			continue
		}
		kept := names[:0:0]
		for _, name := range names {
			if !missing[name] {
				kept = append(kept, name)
			}
		}
		if len(kept) == len(names) {
			continue
		}
		encoded, err := encode(kept)
		if err != nil {
			return nil, err
		}
		object[set], changed = encoded, true
	}
	if !changed {
		return doc, nil
	}
	return encode(object)
}

// encode marshals without Go's HTML escaping, so strings keep their bytes.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func rewrite(file string, missing map[string]bool, path ...string) error {
	doc, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	stripped, err := stripCaps(doc, missing, path...)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if bytes.Equal(stripped, doc) {
		return nil
	}
	return os.WriteFile(file, stripped, 0o644)
}

// option is the value of the first of names in args (`--name value` or `--name=value`).
func option(args []string, names ...string) (string, bool) {
	for i, arg := range args {
		for _, name := range names {
			if arg == name && i+1 < len(args) {
				return args[i+1], true
			}
			if value, ok := strings.CutPrefix(arg, name+"="); ok {
				return value, true
			}
		}
	}
	return "", false
}

// command is runc's subcommand among args, when it is one that grants capabilities.
func command(args []string) string {
	for _, arg := range args {
		if arg == "create" || arg == "run" || arg == "exec" {
			return arg
		}
	}
	return ""
}

// fix rewrites what runc is about to read: a bundle's config.json (create, run) or an exec's process
// JSON.
func fix(args []string, missing map[string]bool) error {
	switch command(args) {
	case "create", "run":
		bundle, ok := option(args, "--bundle", "-b")
		if !ok {
			var err error
			if bundle, err = os.Getwd(); err != nil {
				return err
			}
		}
		return rewrite(filepath.Join(bundle, "config.json"), missing, "process", "capabilities")
	case "exec":
		if process, ok := option(args, "--process", "-p"); ok {
			return rewrite(process, missing, "capabilities")
		}
	}
	return nil
}

func main() {
	args := os.Args[1:]
	status, err := os.ReadFile("/proc/self/status")
	if err == nil {
		var missing map[string]bool
		if missing, err = missingCaps(string(status)); err == nil && len(missing) > 0 {
			err = fix(args, missing)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "runc-capfix: %v\n", err)
		os.Exit(1)
	}
	runc := os.Getenv("BKCACHE_REAL_RUNC")
	if runc == "" {
		runc = "/usr/sbin/runc"
	}
	err = syscall.Exec(runc, append([]string{runc}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "runc-capfix: exec %s: %v\n", runc, err)
	os.Exit(1)
}
