; Definitions

(function_definition
  declarator: (function_declarator
    declarator: (qualified_identifier
      scope: (namespace_identifier) @name.receiver
      name: (_) @name.definition.method))) @definition.method

(function_definition
  declarator: (function_declarator
    declarator: [(identifier) (field_identifier) (operator_name) (destructor_name)] @name.definition.function)) @definition.function

(function_definition
  declarator: (_
    declarator: (function_declarator
      declarator: [(identifier) (field_identifier)] @name.definition.function))) @definition.function

(field_declaration
  declarator: (function_declarator
    declarator: (field_identifier) @name.definition.method)) @definition.method

(declaration
  declarator: (function_declarator
    declarator: (identifier) @name.definition.function)) @definition.function

(class_specifier
  name: (type_identifier) @name.definition.class
  body: (_)) @definition.class

(struct_specifier
  name: (type_identifier) @name.definition.struct
  body: (_)) @definition.struct

(union_specifier
  name: (type_identifier) @name.definition.struct
  body: (_)) @definition.struct

(enum_specifier
  name: (type_identifier) @name.definition.enum
  body: (_)) @definition.enum

(namespace_definition
  name: (namespace_identifier) @name.definition.module) @definition.module

(type_definition
  declarator: (type_identifier) @name.definition.type) @definition.type

(alias_declaration
  name: (type_identifier) @name.definition.type) @definition.type

(preproc_def
  name: (identifier) @name.definition.macro) @definition.macro

(preproc_function_def
  name: (identifier) @name.definition.macro) @definition.macro

; References

(call_expression
  function: (identifier) @name.reference.call)

(call_expression
  function: (field_expression
    field: (field_identifier) @name.reference.call))

(call_expression
  function: (qualified_identifier
    name: (identifier) @name.reference.call))

(base_class_clause
  (type_identifier) @name.reference.class)

(new_expression
  type: (type_identifier) @name.reference.class)

(type_identifier) @name.reference.type
