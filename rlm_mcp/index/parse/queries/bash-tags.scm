; Definitions

(function_definition
  name: (word) @name.definition.function) @definition.function

(program
  (variable_assignment
    name: (variable_name) @name.definition.variable) @definition.variable)

(program
  (declaration_command
    (variable_assignment
      name: (variable_name) @name.definition.variable)) @definition.variable)

; References

(command
  name: (command_name (word) @name.reference.call))
