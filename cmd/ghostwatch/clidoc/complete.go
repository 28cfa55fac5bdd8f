package clidoc

import (
	"fmt"
	"sort"
	"strings"
)

// Shells are the shells Completion writes for.
var Shells = []string{"bash", "zsh", "fish"}

// Completion returns the completion script of the tree for a shell: the commands after their
// parent, the flags of each command, the values of flags that take one of a fixed set, files where
// a value or an argument is a path. The scripts hold the tree itself and never run the program.
func Completion(root *Command, shell string) (string, error) {
	switch shell {
	case "bash":
		return bash(root), nil
	case "zsh":
		return zsh(root), nil
	case "fish":
		return fish(root), nil
	}
	return "", fmt.Errorf("no completion for shell %q: want %s", shell, strings.Join(Shells, ", "))
}

func key(c *Command) string { return strings.Join(c.Path, "/") }

func subNames(c *Command) []string {
	var out []string
	for _, s := range c.Subs {
		out = append(out, s.Path[len(s.Path)-1])
	}
	return out
}

// bashArray writes `declare -gA NAME=( [k]='v' ... )` with the keys sorted, leaving out empty values.
func bashArray(b *strings.Builder, name string, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	fmt.Fprintf(b, "declare -gA %s=(\n", name)
	for _, k := range keys {
		fmt.Fprintf(b, "\t['%s']='%s'\n", k, m[k])
	}
	b.WriteString(")\n")
}

func bash(root *Command) string {
	fn := "_" + strings.ReplaceAll(root.Path[0], "-", "_")
	subs, flags, valued, files, values, args, argFiles := map[string]string{}, map[string]string{},
		map[string]string{}, map[string]string{}, map[string]string{}, map[string]string{}, map[string]string{}
	root.Walk(func(c *Command) error {
		k := key(c)
		subs[k] = strings.Join(subNames(c), " ")
		var all, val, file []string
		for _, f := range c.Flags {
			all = append(all, f.Names()...)
			if !f.TakesValue {
				continue
			}
			val = append(val, f.Names()...)
			if f.File {
				file = append(file, f.Names()...)
			}
			for _, n := range f.Names() {
				values[k+" "+n] = strings.Join(f.Values, " ")
			}
		}
		flags[k], valued[k], files[k] = strings.Join(all, " "), strings.Join(val, " "), strings.Join(file, " ")
		args[k] = strings.Join(c.Args, " ")
		if c.ArgFiles {
			argFiles[k] = "1"
		}
		return nil
	})
	var b strings.Builder
	fmt.Fprintf(&b, `# bash completion for %[1]s, written by '%[1]s completion bash' from its command line:
#   source <(%[1]s completion bash)
# or save it as /etc/bash_completion.d/%[1]s (bash 4 or newer: it uses associative arrays).

`, root.Path[0])
	for _, a := range []struct {
		name string
		m    map[string]string
	}{{"subs", subs}, {"flags", flags}, {"valued", valued}, {"files", files}, {"values", values}, {"args", args}, {"argfiles", argFiles}} {
		bashArray(&b, fn+"_"+a.name, a.m)
	}
	fmt.Fprintf(&b, `
# %[1]s finds the command being typed (its path from the program's name, the words before the
# cursor that name subcommands, skipping flags and their values), then proposes its flags, the
# values of the flag before the cursor, or its subcommands and arguments.
%[1]s() {
	local cur=${COMP_WORDS[COMP_CWORD]} cmd=%[2]s want= i w
	COMPREPLY=()
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		# bash splits --flag=value into three words: the "=" says nothing more.
		[[ $w == = ]] && continue
		if [[ -n $want ]]; then
			want=
			continue
		fi
		case $w in
		--) break ;;
		-*) [[ " ${%[1]s_valued[$cmd]} " == *" $w "* ]] && want=$w ;;
		*) [[ " ${%[1]s_subs[$cmd]} " == *" $w "* ]] && cmd=$cmd/$w ;;
		esac
	done
	[[ $cur == = ]] && cur=
	if [[ -n $want ]]; then
		if [[ -n ${%[1]s_values[$cmd $want]} ]]; then
			mapfile -t COMPREPLY < <(compgen -W "${%[1]s_values[$cmd $want]}" -- "$cur")
		elif [[ " ${%[1]s_files[$cmd]} " == *" $want "* ]]; then
			compopt -o filenames 2>/dev/null
			mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		fi
		return 0
	fi
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "${%[1]s_flags[$cmd]}" -- "$cur")
		return 0
	fi
	mapfile -t COMPREPLY < <(compgen -W "${%[1]s_subs[$cmd]} ${%[1]s_args[$cmd]}" -- "$cur")
	if [[ -n ${%[1]s_argfiles[$cmd]} ]]; then
		compopt -o filenames 2>/dev/null
		mapfile -t -O ${#COMPREPLY[@]} COMPREPLY < <(compgen -f -- "$cur")
	fi
	return 0
}
complete -F %[1]s %[2]s
`, fn, root.Path[0])
	return b.String()
}

// zshQuote quotes s for a single-quoted zsh word.
func zshQuote(s string) string { return strings.ReplaceAll(s, "'", `'\''`) }

// zshDesc escapes a description inside _arguments' brackets.
func zshDesc(s string) string {
	return zshQuote(strings.NewReplacer(`\`, `\\`, `]`, `\]`, `:`, `\:`, "\n", " ").Replace(s))
}

func zshFunc(c *Command) string {
	return "_" + strings.ReplaceAll(strings.Join(c.Path, "__"), "-", "_")
}

func zsh(root *Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, `#compdef %[1]s
# zsh completion for %[1]s, written by '%[1]s completion zsh' from its command line:
#   source <(%[1]s completion zsh)      (after compinit)
# or save it as _%[1]s in a directory of $fpath.
`, root.Path[0])
	root.Walk(func(c *Command) error {
		fmt.Fprintf(&b, "\n%s() {\n", zshFunc(c))
		if len(c.Subs) > 0 {
			b.WriteString("\tlocal curcontext=$curcontext state state_descr line\n\ttypeset -A opt_args\n")
			b.WriteString("\t_arguments -C")
		} else {
			b.WriteString("\t_arguments")
		}
		for _, f := range c.Flags {
			b.WriteString(" \\\n\t\t")
			b.WriteString(zshFlag(f))
		}
		switch {
		case len(c.Subs) > 0:
			b.WriteString(" \\\n\t\t'1: :->command' \\\n\t\t'*:: :->argument' && return\n")
			b.WriteString("\tcase $state in\n\tcommand)\n\t\tlocal -a commands=(\n")
			for _, s := range c.Subs {
				fmt.Fprintf(&b, "\t\t\t'%s:%s'\n", s.Path[len(s.Path)-1], zshQuote(s.Usage))
			}
			b.WriteString("\t\t)\n\t\t_describe -t commands command commands\n\t\t;;\n\targument)\n\t\tcase $words[1] in\n")
			for _, s := range c.Subs {
				fmt.Fprintf(&b, "\t\t%s) %s ;;\n", s.Path[len(s.Path)-1], zshFunc(s))
			}
			b.WriteString("\t\tesac\n\t\t;;\n\tesac\n")
		case len(c.Args) > 0:
			fmt.Fprintf(&b, " \\\n\t\t'*:argument:(%s)'\n", strings.Join(c.Args, " "))
		case c.ArgFiles:
			b.WriteString(" \\\n\t\t'*:file:_files'\n")
		default:
			b.WriteString("\n")
		}
		b.WriteString("}\n")
		return nil
	})
	fn := zshFunc(root)
	fmt.Fprintf(&b, `
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
	%s "$@"
else
	compdef %s %s
fi
`, fn, fn, root.Path[0])
	return b.String()
}

// zshFlag is an _arguments spec: '(-o --output)'{-o+,--output=}'[usage]:output:(table json)'.
func zshFlag(f Flag) string {
	names := f.Names()
	var spellings []string
	for _, n := range names {
		switch {
		case !f.TakesValue:
			spellings = append(spellings, n)
		case strings.HasPrefix(n, "--"):
			spellings = append(spellings, n+"=")
		default:
			spellings = append(spellings, n+"+")
		}
	}
	prefix := ""
	switch {
	case f.Long == "help":
		prefix = "'(- *)'"
	case f.Repeatable:
		prefix = "'*'"
	case len(names) > 1:
		prefix = "'(" + strings.Join(names, " ") + ")'"
	}
	spec := prefix + spellings[0]
	if len(spellings) > 1 {
		spec = prefix + "{" + strings.Join(spellings, ",") + "}"
	}
	spec += "'[" + zshDesc(f.Usage) + "]"
	if f.TakesValue {
		action := " "
		switch {
		case len(f.Values) > 0:
			action = "(" + strings.Join(f.Values, " ") + ")"
		case f.File:
			action = "_files"
		}
		spec += ":" + f.Long + ":" + action
	}
	return spec + "'"
}

// fishQuote quotes s for a single-quoted fish word.
func fishQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", " ").Replace(s)
}

func fish(root *Command) string {
	prog := root.Path[0]
	fn := "__" + strings.ReplaceAll(prog, "-", "_")
	var paths, valued []string
	root.Walk(func(c *Command) error {
		paths = append(paths, key(c))
		for _, f := range c.Flags {
			if f.TakesValue {
				for _, n := range f.Names() {
					valued = append(valued, "'"+key(c)+" "+n+"'")
				}
			}
		}
		return nil
	})
	var b strings.Builder
	fmt.Fprintf(&b, `# fish completion for %[1]s, written by '%[1]s completion fish' from its command line:
#   %[1]s completion fish | source
# or save it as ~/.config/fish/completions/%[1]s.fish.

set -g %[2]s_paths %[3]s
set -g %[2]s_valued %[4]s

# %[2]s_command prints the command being typed as a path from the program's name ("%[1]s/trace"):
# the words before the cursor that name subcommands, skipping flags and their values.
function %[2]s_command
	set -l path %[1]s
	set -l want 0
	for w in (commandline -opc)[2..-1]
		if test $want = 1
			set want 0
			continue
		end
		switch $w
			case -- '--*=*'
			case -- '-*'
				contains -- "$path $w" $%[2]s_valued; and set want 1
			case '*'
				contains -- "$path/$w" $%[2]s_paths; and set path "$path/$w"
		end
	end
	echo $path
end

complete -c %[1]s -f
`, prog, fn, strings.Join(paths, " "), strings.Join(valued, " "))
	root.Walk(func(c *Command) error {
		cond := fmt.Sprintf("-n 'test (%s_command) = %s'", fn, key(c))
		for _, s := range c.Subs {
			fmt.Fprintf(&b, "complete -c %s %s -a %s -d '%s'\n", prog, cond, s.Path[len(s.Path)-1], fishQuote(s.Usage))
		}
		if len(c.Args) > 0 {
			fmt.Fprintf(&b, "complete -c %s %s -a '%s'\n", prog, cond, strings.Join(c.Args, " "))
		}
		if c.ArgFiles {
			fmt.Fprintf(&b, "complete -c %s %s -F\n", prog, cond)
		}
		for _, f := range c.Flags {
			fmt.Fprintf(&b, "complete -c %s %s -l %s", prog, cond, f.Long)
			for _, o := range f.Other {
				fmt.Fprintf(&b, " -l %s", o)
			}
			for _, s := range f.Short {
				fmt.Fprintf(&b, " -s %s", s)
			}
			switch {
			case !f.TakesValue:
			case len(f.Values) > 0:
				fmt.Fprintf(&b, " -x -a '%s'", strings.Join(f.Values, " "))
			case f.File:
				b.WriteString(" -r -F")
			default:
				b.WriteString(" -x")
			}
			fmt.Fprintf(&b, " -d '%s'\n", fishQuote(f.Usage))
		}
		return nil
	})
	return b.String()
}
