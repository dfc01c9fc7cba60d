; Definitions

(class_declaration
  name: (_) @name.definition.class) @definition.class

(class
  name: (_) @name.definition.class) @definition.class

(abstract_class_declaration
  name: (type_identifier) @name.definition.class) @definition.class

(interface_declaration
  name: (type_identifier) @name.definition.interface) @definition.interface

(type_alias_declaration
  name: (type_identifier) @name.definition.type) @definition.type

(enum_declaration
  name: (identifier) @name.definition.enum) @definition.enum

(internal_module
  name: (_) @name.definition.module) @definition.module

(abstract_method_signature
  name: (property_identifier) @name.definition.method) @definition.method

(function_signature
  name: (identifier) @name.definition.function) @definition.function

(interface_body
  (method_signature
    name: (property_identifier) @name.definition.method) @definition.method)

(public_field_definition
  name: (property_identifier) @name.definition.field) @definition.field

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

(extends_clause
  value: (identifier) @name.reference.class)

(implements_clause
  (type_identifier) @name.reference.interface)

(type_annotation
  (type_identifier) @name.reference.type)

(generic_type
  name: (type_identifier) @name.reference.type)
