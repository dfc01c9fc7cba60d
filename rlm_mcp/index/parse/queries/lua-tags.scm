; Definitions

(function_declaration
  name: (method_index_expression
    table: (identifier) @name.receiver
    method: (identifier) @name.definition.method)) @definition.method

(function_declaration
  name: (dot_index_expression
    table: (identifier) @name.receiver
    field: (identifier) @name.definition.function)) @definition.function

(function_declaration
  name: (identifier) @name.definition.function) @definition.function

(assignment_statement
  (variable_list
    name: [
      (identifier) @name.definition.function
      (dot_index_expression field: (identifier) @name.definition.function)
    ])
  (expression_list
    value: (function_definition))) @definition.function

(chunk
  (variable_declaration
    (assignment_statement
      (variable_list name: (identifier) @name.definition.variable)
      (expression_list value: (table_constructor)))) @definition.variable)

; References

(function_call
  name: [
    (identifier) @name.reference.call
    (dot_index_expression field: (identifier) @name.reference.call)
    (method_index_expression method: (identifier) @name.reference.call)
  ])
