# Sourced by org.example:hello; kept apart to show `requires` at work.
shipyard_greeting() {
    printf 'hello, %s\n' "${1:-world}"
}
