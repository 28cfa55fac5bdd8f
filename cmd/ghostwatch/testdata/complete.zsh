# Completes a line in an interactive zsh, as a person pressing Tab would, and appends every
# candidate zsh was offered to a file: zsh complete.zsh SCRIPT OUT LINE (TestCompletionZsh).
zmodload zsh/zpty
script=$1 out=$2 line=$3
zpty gw zsh -f -i
zpty -w gw "PROMPT='GWP> '; autoload -U compinit; compinit -u -D; source ${(q)script}"
zpty -w gw "compadd() { local -a hits; builtin compadd -A hits \"\$@\"; print -rl -- \$hits >> ${(q)out}; builtin compadd \"\$@\"; }"
# Type only once the line editor waits at its prompt: it drops what was typed before.
zpty -w gw "print REA''DY"
zpty -r gw x '*READY*GWP> '
zpty -w -n gw "$line"$'\t'
zpty -w gw $'\C-u'"print DO''NE"
zpty -r gw x '*DONE*'
zpty -d gw
