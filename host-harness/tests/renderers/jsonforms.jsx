// The connection form in JSON Forms (React, vanilla renderers), as a flow
// builder would show it: the schema and UI schema exactly as the component
// exports them, validated by Ajv for JSON Schema 2020-12.
import React from "react";
import { createRoot } from "react-dom/client";
import { JsonForms } from "@jsonforms/react";
import { vanillaCells, vanillaRenderers } from "@jsonforms/vanilla-renderers";
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import schema from "./connection.schema.json";
import uischema from "./connection.uischema.json";

const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: false });
addFormats(ajv);

function Form() {
  const [data, setData] = React.useState({});
  window.formData = data;
  return (
    <JsonForms
      schema={schema}
      uischema={uischema}
      data={data}
      renderers={vanillaRenderers}
      cells={vanillaCells}
      ajv={ajv}
      onChange={({ data, errors }) => {
        setData(data);
        window.formErrors = errors;
      }}
    />
  );
}

createRoot(document.getElementById("root")).render(<Form />);
window.rendered = true;
