; Definitions

(class_declaration
  name: (_) @name.definition.class) @definition.class

(class
  name: (_) @name.definition.class) @definition.class

(method_definition
  name: [(property_identifier) (private_property_identifier)] @name.definition.method) @definition.method

(function_declaration
  name: (identifier) @name.definition.function) @definition.function

(generator_function_declaration
  name: (identifier) @name.definition.function) @definition.function

(lexical_declaration
  (variable_declarator
    name: (identifier) @name.definition.function
    value: [(arrow_function) (function_expression) (generator_function)])) @definition.function

(variable_declaration
  (variable_declarator
    name: (identifier) @name.definition.function
    value: [(arrow_function) (function_expression) (generator_function)])) @definition.function

(assignment_expression
  left: (member_expression
    property: (property_identifier) @name.definition.function)
  right: [(arrow_function) (function_expression)]) @definition.function

(pair
  key: (property_identifier) @name.definition.function
  value: [(arrow_function) (function_expression)]) @definition.function

(program
  (lexical_declaration
    (variable_declarator
      name: (identifier) @name.definition.constant
      value: (_)) @definition.constant)
  (#match? @name.definition.constant "^[A-Z][A-Z0-9_]*$"))

; References

(call_expression
  function: (identifier) @name.reference.call)

(call_expression
  function: (member_expression
    property: (property_identifier) @name.reference.call))

(new_expression
  constructor: (identifier) @name.reference.class)

(class_heritage
  (identifier) @name.reference.class)

(jsx_opening_element
  name: (identifier) @name.reference.class
  (#match? @name.reference.class "^[A-Z]"))

(jsx_self_closing_element
  name: (identifier) @name.reference.class
  (#match? @name.reference.class "^[A-Z]"))
